"""minGRU on a long-range recall task at T = 4096, trained with its time-parallel loop on every engine.

Each sequence holds T random values in [-1, 1] and one marker, somewhere in the first half; the target is
the marked value, read after the last step, so the model must keep it for 2048 to 4096 steps. Guessing 0
gives a mean squared error of 1/3. One minGRU layer (Feng et al. 2024, ``rshop_core.cells.MinGRUCell``)
can solve it exactly: its update gate reads the input only, so it can open on the marker and stay shut
elsewhere; and because no gate reads the state, the new state is affine in the old one, so the loop runs as
an associative scan over time (``time_parallel="scan"``), O(log T) deep, in training as in inference.

The gate's bias starts at -log(T) (chrono initialisation, Tallec & Ollivier 2018), so that the memory spans
the sequence from the first step; it is set on the rshop model before lowering, so every engine starts
from the same weights.

    python examples/mingru_recall.py [--engine jax|torch|tensorflow|all] [--steps 600] [--smoke] [--plot]

optax on jax, torch.optim on torch, Keras' Adam with ``Model.fit`` on tensorflow.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    Result,
    arguments,
    batches,
    finish,
    progress,
    timed,
    trainers,
)

from rshop_core import Input, RecurrentModel
from rshop_core.cells import MinGRUCell
from rshop_core.layers import Dense

BATCH = 32
# (T, units, learning rate): the smoke run is short, so it learns fast enough to leave the plateau of
# "predict 0" (mse 1/3) that comes before the gate learns to open on the marker
SIZES = {"full": (4096, 8, 3e-2), "smoke": (64, 4, 0.1)}
LR = SIZES["full"][2]


def recall_task(rng: np.random.Generator, batch: int, length: int) -> tuple[np.ndarray, np.ndarray]:
    """x (batch, length, 2): a value and a marker per step; y (batch, 1): the value at the marker."""
    values = rng.uniform(-1.0, 1.0, (batch, length))
    where = rng.integers(0, length // 2, batch)
    marks = np.zeros((batch, length))
    marks[np.arange(batch), where] = 1.0
    x = np.stack([values, marks], -1).astype(np.float32)
    return x, values[np.arange(batch), where][:, None].astype(np.float32)


def mingru_model(units: int, length: int, seed: int = 0) -> RecurrentModel:
    """One minGRU cell and a Dense(1) readout of its state, run as an associative scan over time."""
    x_t, h = Input((2,), name="x"), Input((units,), name="h")
    h_new, _ = MinGRUCell(units, name="mingru")(x_t, [h])
    model = RecurrentModel(
        input=x_t,
        initial_states=[h],
        output=Dense(1, name="readout")(h_new),
        final_states=[h_new],
        time_parallel="scan",  # the parallel loop, asked for by name (refused at lower() if the step were not affine)
        name="mingru_recall",
        seed=seed,
    )
    w = model.get_weights()
    w["mingru/bias"][:units] = -math.log(length)  # columns [z | h]: the update gate's bias
    model.set_weights(w)
    return model


def main(argv: list[str] | None = None) -> list[Result]:
    args = arguments(__doc__, 600, argv)
    global LR
    length, units, LR = SIZES["smoke" if args.smoke else "full"]
    data = batches(lambda rng: recall_task(rng, BATCH, length), args.steps, seed=0)
    x_test, y_test = recall_task(np.random.default_rng(1), 64, length)
    print(f"recall the marked value, T = {length}, minGRU with {units} units; guessing 0 gives mse 0.333")
    results = []
    for engine in args.engines:
        model = mingru_model(units, length, seed=0)
        layer = model.lower(engine)
        print(f"{engine}: {layer.explain().time.splitlines()[0]}")  # which loop runs over time
        tick = progress(args.steps, engine, args.quiet)
        (weights, losses), seconds = timed(trainers(LR, "mse")[engine], model, data, tick)
        check = model.lower("numpy")
        check.set_weights(weights)
        mse = float(np.mean((check(x_test) - y_test) ** 2))
        results.append(
            Result(
                "mingru_recall",
                engine,
                losses,
                "test mse",
                mse,
                seconds,
                "< 0.01",
                mse < 0.01,
                {"T": length, "units": units, "batch": BATCH, "lr": LR, "loop": "associative scan"},
            )
        )
    finish("mingru_recall", f"minGRU, recall over T={length} (associative scan)", results, args, "mse")
    return results


if __name__ == "__main__":
    main()
