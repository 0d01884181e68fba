"""What the gallery's examples share: arguments, progress bars, the training loop of each ecosystem
(:func:`trainers`: optax on jax, torch.optim on torch, Keras' ``Model.fit`` on tensorflow), loss curves,
results. No model code lives here: each example defines its own model, so the script you read is the model
you train. (seq2seq_sort.py trains an encoder and a decoder together and keeps its own loops.)

    python examples/_common.py table     rewrite docs/examples.md's results table from docs/examples/*.json
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "examples"
ENGINES = ("jax", "torch", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")  # tensorflow trains through Keras' Model.fit


@dataclass
class Result:
    """One engine's run: its loss after every optimizer step, the final metric, the training time."""

    example: str
    engine: str
    losses: list[float]
    metric_name: str
    metric: float
    seconds: float
    target: str = ""
    reached: bool = False
    settings: dict = field(default_factory=dict)

    def line(self) -> str:
        mark = "reached" if self.reached else "NOT reached"
        return (
            f"{self.example:<14} {self.engine:<11} {self.metric_name} {self.metric:.4f} ({mark}: {self.target})  "
            f"{len(self.losses)} steps in {self.seconds:.1f}s "
            f"({1e3 * self.seconds / max(len(self.losses), 1):.1f} ms/step)"
        )


def arguments(doc: str, steps: int, argv: list[str] | None) -> argparse.Namespace:
    """``--engine`` (one of jax, torch, tensorflow, or ``all``), ``--steps``, ``--smoke``, ``--plot``."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--engine", default="all", choices=[*ENGINES, "all"], help="train on this engine (default: all)")
    ap.add_argument("--steps", type=int, default=steps, help=f"optimizer steps (default {steps})")
    ap.add_argument("--smoke", action="store_true", help="a few steps at tiny sizes (what CI runs)")
    ap.add_argument("--plot", action="store_true", help="write docs/examples/<name>.png and <name>.json")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)
    args.engines = list(ENGINES) if args.engine == "all" else [args.engine]
    return args


def progress(total: int, engine: str, quiet: bool = False) -> Callable[[float], None]:
    """A tqdm bar; call the returned function with each step's loss."""
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=f"{engine:>10}", unit="step", disable=quiet, leave=True, file=sys.stdout)
    seen = [0]

    def tick(loss: float) -> None:
        seen[0] += 1
        bar.update(1)
        if seen[0] % 10 == 0 or seen[0] == total:
            bar.set_postfix(loss=f"{loss:.4f}")
        if seen[0] == total:
            bar.close()

    return tick


def batches(make: Callable[[np.random.Generator], tuple], steps: int, seed: int = 0) -> list[tuple]:
    """The training batches, drawn once, so every engine sees the same ones in the same order."""
    rng = np.random.default_rng(seed)
    return [make(rng) for _ in range(steps)]


def keras_on_tensorflow() -> Any:
    """Keras, refusing to train unless its backend is tensorflow (KERAS_BACKEND is read at Keras' first import)."""
    import keras

    if keras.backend.backend() != "tensorflow":
        raise SystemExit(
            f"--engine tensorflow trains with Keras' Model.fit: expected KERAS_BACKEND=tensorflow, received Keras "
            f"started on {keras.backend.backend()!r}. Set KERAS_BACKEND=tensorflow before Keras is first imported."
        )
    return keras


def keras_losses(log: list[float]) -> list[float]:
    """Keras' ``on_train_batch_end`` reports the running mean of the epoch's loss; undo the mean."""
    out, prev = [], 0.0
    for i, mean in enumerate(log, 1):
        out.append(i * mean - (i - 1) * prev)
        prev = mean
    return out


def keras_recorder(steps: int, tick: Callable[[float], None]) -> tuple[object, list[float]]:
    """A Keras callback recording each batch's loss (de-averaged) and moving the progress bar."""
    import keras

    log: list[float] = []

    class Record(keras.callbacks.Callback):
        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            log.append(float((logs or {})["loss"]))
            tick(keras_losses(log)[-1])

    return Record(), log


def keras_feed(data: list[tuple]) -> Iterator[tuple]:
    """The same batches as the other engines, in order, as a generator ``Model.fit`` reads."""
    yield from data


# -- one training loop per engine, each with its own ecosystem's optimizer ----------------------------
# ``loss``: "mse" (outputs against float targets) or "sparse_ce" (logits against integer class ids).
def train_jax(model: Any, data: list[tuple], tick: Callable[[float], None], lr: float, loss: str) -> tuple:
    """optax's Adam in a jitted update of ``layer.apply``'s parameters; returns (weights, losses)."""
    import jax
    import jax.numpy as jnp
    import optax

    layer = model.lower("jax")

    def objective(p: Any, x: Any, y: Any) -> Any:
        out = layer.apply(p, x)
        if loss == "mse":
            return jnp.mean((out - y) ** 2)
        return optax.softmax_cross_entropy_with_integer_labels(out, y).mean()

    opt = optax.adam(lr)
    params = layer.params
    state = opt.init(params)

    @jax.jit
    def update(params: Any, state: Any, x: Any, y: Any) -> tuple:
        value, grads = jax.value_and_grad(objective)(params, x, y)
        updates, state = opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state, value

    losses = []
    for x, y in data:
        params, state, value = update(params, state, jnp.asarray(x), jnp.asarray(y))
        losses.append(float(value))
        tick(losses[-1])
    return {k: np.asarray(v) for k, v in params.items()}, losses


def train_torch(model: Any, data: list[tuple], tick: Callable[[float], None], lr: float, loss: str) -> tuple:
    """torch.optim's Adam on the lowered ``nn.Module``'s parameters; returns (weights, losses)."""
    import torch

    layer = model.lower("torch")
    opt = torch.optim.Adam(layer.parameters(), lr=lr)
    losses = []
    for x, y in data:
        out = layer(torch.from_numpy(x))
        if loss == "mse":
            value = torch.mean((out - torch.from_numpy(y)) ** 2)
        else:
            value = torch.nn.functional.cross_entropy(
                out.reshape(-1, out.shape[-1]), torch.from_numpy(y).long().reshape(-1)
            )
        opt.zero_grad()
        value.backward()
        opt.step()
        losses.append(value.item())
        tick(losses[-1])
    return layer.get_weights(), losses


def train_keras(model: Any, data: list[tuple], tick: Callable[[float], None], lr: float, loss: str) -> tuple:
    """Keras' Adam and ``Model.fit`` with the model inside ``RecurrentLayer``; returns (weights, losses)."""
    from rshop_backends.keras import RecurrentLayer

    keras = keras_on_tensorflow()
    rnn = RecurrentLayer(model, name=model.name)
    x0 = np.asarray(data[0][0])
    net = keras.Sequential([keras.Input(x0.shape[1:], dtype="int32" if x0.dtype.kind in "iu" else "float32"), rnn])
    objective = "mse" if loss == "mse" else keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    net.compile(optimizer=keras.optimizers.Adam(lr, epsilon=1e-8), loss=objective)  # optax's and torch's epsilon
    record, log = keras_recorder(len(data), tick)
    net.fit(keras_feed(data), steps_per_epoch=len(data), epochs=1, callbacks=[record], verbose=0, shuffle=False)
    return rnn.get_rshop_weights(), keras_losses(log)


def trainers(lr: float, loss: str) -> dict[str, Callable[..., tuple]]:
    """``{engine: train(model, data, tick)}`` at learning rate ``lr`` with ``loss`` ("mse" or "sparse_ce")."""
    if loss not in ("mse", "sparse_ce"):
        raise ValueError(f"trainers loss: expected 'mse' or 'sparse_ce', received {loss!r}")
    loops = {"jax": train_jax, "torch": train_torch, "tensorflow": train_keras}
    return {e: functools.partial(f, lr=lr, loss=loss) for e, f in loops.items()}


def timed(fn: Callable[..., tuple], *args: object) -> tuple[tuple, float]:
    """``fn(*args)`` and the seconds it took."""
    started = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - started


def agreement(results: Iterable[Result], first: int = 10) -> float:
    """Largest relative difference between engines' losses over the first ``first`` steps."""
    curves = [np.asarray(r.losses[:first], np.float64) for r in results]
    if len(curves) < 2:
        return 0.0
    n = min(len(c) for c in curves)
    stack = np.stack([c[:n] for c in curves])
    return float(np.max((stack.max(0) - stack.min(0)) / np.maximum(np.abs(stack).min(0), 1e-12)))


def agreements(results: list[Result]) -> dict[str, float]:
    """:func:`agreement` per example (a script may train several models)."""
    names = dict.fromkeys(r.example for r in results)
    return {n: agreement([r for r in results if r.example == n]) for n in names}


def finish(name: str, title: str, results: list[Result], args: argparse.Namespace, ylabel: str = "loss") -> None:
    """Print the results lines and the first-steps agreement; with ``--plot`` write the PNG and JSON."""
    print()
    for r in results:
        print(r.line())
    if args.plot:  # a run of some engines keeps the other engines' results of an earlier run
        kept = OUT / f"{name}.json"
        if kept.exists():
            earlier = [Result(**r) for r in json.loads(kept.read_text(encoding="utf-8"))["results"]]
            results = [r for r in earlier if r.engine not in args.engines] + results
            results.sort(key=lambda r: (r.example, ENGINES.index(r.engine)))
    groups = agreements(results)
    for example, worst in groups.items():
        print(f"{example}: its first 10 losses agree across engines to a relative {worst:.2e}")
    if args.plot:
        OUT.mkdir(parents=True, exist_ok=True)
        plot(results, OUT / f"{name}.png", title, ylabel)
        doc = {"results": [asdict(r) for r in results], "first_steps_agreement": groups}
        (OUT / f"{name}.json").write_text(json.dumps(doc, indent=1), encoding="utf-8")
        print(f"wrote {OUT / name}.png and .json")


def plot(results: list[Result], path: Path, title: str, ylabel: str) -> None:
    """Every engine's loss curve (and a smoothed one) in one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for r in results:
        y = np.asarray(r.losses)
        w = max(1, len(y) // 50)
        smooth = np.convolve(y, np.ones(w) / w, mode="valid")
        (line,) = ax.plot(np.arange(len(smooth)) + w, smooth, label=f"{r.engine} ({r.metric_name} {r.metric:.3f})")
        ax.plot(np.arange(1, len(y) + 1), y, color=line.get_color(), alpha=0.2, lw=0.7)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if all(min(r.losses) > 0 for r in results):
        ax.set_yscale("log")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


TABLE_START, TABLE_END = "<!-- results: start -->", "<!-- results: end -->"


def table() -> str:
    """The results table from every docs/examples/<name>.json."""
    rows = [
        "| example | engine | steps | metric | target | reached | time | ms/step | first-10 agreement |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for path in sorted(OUT.glob("*.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        for r in doc["results"]:
            n = len(r["losses"])
            rows.append(
                f"| {r['example']} | {r['engine']} | {n} | {r['metric_name']} {r['metric']:.4f} | {r['target']} | "
                f"{'yes' if r['reached'] else 'no'} | {r['seconds']:.0f} s | {1e3 * r['seconds'] / max(n, 1):.1f} | "
                f"{doc['first_steps_agreement'].get(r['example'], 0.0):.1e} |"
            )
    return "\n".join(rows)


def write_table(doc: Path = ROOT / "docs" / "examples.md") -> None:
    text = doc.read_text(encoding="utf-8")
    head, rest = text.split(TABLE_START)
    _, tail = rest.split(TABLE_END)
    doc.write_text(f"{head}{TABLE_START}\n{table()}\n{TABLE_END}{tail}", encoding="utf-8")


def bits(nats: float) -> float:
    return nats / math.log(2.0)


if __name__ == "__main__":
    if sys.argv[1:] == ["table"]:
        write_table()
        print(table())
    else:
        raise SystemExit("usage: python examples/_common.py table")
