"""A recurrent highway network (RHN) character language model, trained on every engine, then sampled.

The text is Lewis Carroll's *Alice's Adventures in Wonderland* (1865, public domain; see
examples/data/SOURCE.md), the whole book, 144 KB: the first 90% trains, the last 10% (the end of the book,
never seen in training) measures bits per character. The
step reads one character id (int32) and embeds it inside the step, then runs an RHN (Zilly et al. 2017,
as in RecurrentShop's recurrent_highway_networks example): ``depth`` highway layers per time step, each
``s = t * tanh(W s + b) + (1 - t) * s`` with a transform gate ``t``, the first one also reading the input.
After training, text is sampled one character at a time from the trained weights on the numpy engine.

    python examples/rhn_charlm.py [--engine jax|torch|tensorflow|all] [--steps 800] [--smoke] [--plot]

optax on jax, torch.optim on torch, Keras' Adam with ``Model.fit`` on tensorflow. The same initial weights
and batches on every engine.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    Result,
    arguments,
    batches,
    bits,
    finish,
    progress,
    timed,
    trainers,
)

from rshop_core import Input, RecurrentModel
from rshop_core import functional as F
from rshop_core import initializers as I
from rshop_core.layers import Dense, Embedding

TEXT = (Path(__file__).resolve().parent / "data" / "alice.txt").read_text(encoding="utf-8")
CHARS = sorted(set(TEXT))
LR, BATCH = 3e-3, 32
SIZES = {"full": (96, 3, 16, 64), "smoke": (8, 2, 4, 16)}  # (units, depth, embedding, window)


def encode(text: str) -> np.ndarray:
    index = {c: i for i, c in enumerate(CHARS)}
    return np.array([index[c] for c in text], np.int32)


def windows(ids: np.ndarray, rng: np.random.Generator, batch: int, length: int) -> tuple[np.ndarray, np.ndarray]:
    """``batch`` random windows: inputs ids[s : s + length], targets the next character of each."""
    starts = rng.integers(0, len(ids) - length - 1, batch)
    x = np.stack([ids[s : s + length] for s in starts])
    return x, np.stack([ids[s + 1 : s + length + 1] for s in starts])


def rhn_model(vocab: int, units: int, depth: int, embed: int, seed: int = 0) -> RecurrentModel:
    """One time step: embed the character, ``depth`` highway layers (the first reads the input), logits."""
    char, s_tm1 = Input((), "int32", name="char"), Input((units,), name="s")
    s = s_tm1
    x = Embedding(vocab, embed, name="embedding")(char)
    gate_bias = I.Constant(-2.0)  # transform gates start mostly shut: each layer starts near the identity
    for layer in range(depth):
        h_in = Dense(units, name=f"h{layer}_state")(s)
        t_in = Dense(units, name=f"t{layer}_state", bias_initializer=gate_bias)(s)
        if layer == 0:
            h_in = h_in + Dense(units, use_bias=False, name="h_input")(x)
            t_in = t_in + Dense(units, use_bias=False, name="t_input")(x)
        t = F.sigmoid(t_in)
        s = t * F.tanh(h_in) + (1.0 - t) * s
    logits = Dense(vocab, name="logits")(s)
    return RecurrentModel(
        input=char,
        initial_states=[s_tm1],
        output=logits,
        final_states=[s],
        return_sequences=True,
        name="rhn",
        seed=seed,
    )


TRAINERS = trainers(LR, "sparse_ce")  # optax / torch.optim / Keras fit: examples/_common.py


def log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def bits_per_char(model: RecurrentModel, weights: dict, ids: np.ndarray) -> float:
    """Bits per character of ``ids`` (one sequence, from a zero state) on the numpy float64 engine."""
    check = model.lower("numpy", "float64")
    check.set_weights({k: v.astype(np.float64) for k, v in weights.items()})
    logp = log_softmax(check(ids[None, :-1])[0])
    return bits(-float(np.mean(logp[np.arange(len(ids) - 1), ids[1:]])))


def sample(model: RecurrentModel, weights: dict, prime: str, n: int, temperature: float = 0.7, seed: int = 0) -> str:
    """Feed ``prime``, then draw ``n`` characters one at a time, carrying the state between calls."""
    stepper = RecurrentModel.clone(model, "rhn_sampler", return_sequences=False, return_states=True).lower("numpy")
    stepper.set_weights(weights)
    rng = np.random.default_rng(seed)
    logits, s = stepper(encode(prime)[None])
    out = []
    for _ in range(n):
        p = np.exp(log_softmax(logits[0].astype(np.float64) / temperature))
        nxt = int(rng.choice(len(CHARS), p=p / p.sum()))
        out.append(CHARS[nxt])
        logits, s = stepper(np.array([[nxt]], np.int32), initial_state=[s])
    return prime + "".join(out)


def main(argv: list[str] | None = None) -> list[Result]:
    args = arguments(__doc__, 800, argv)
    units, depth, embed, length = SIZES["smoke" if args.smoke else "full"]
    ids = encode(TEXT)
    split = int(0.9 * len(ids))
    train_ids, test_ids = ids[:split], ids[split:]
    data = batches(lambda rng: windows(train_ids, rng, BATCH, length), args.steps, seed=0)
    print(
        f"RHN char LM: {len(TEXT)} characters, {len(CHARS)} symbols (log2 {np.log2(len(CHARS)):.2f} bits uniform), "
        f"{units} units, depth {depth}"
    )
    results = []
    for engine in args.engines:
        model = rhn_model(len(CHARS), units, depth, embed, seed=0)
        tick = progress(args.steps, engine, args.quiet)
        (weights, losses), seconds = timed(TRAINERS[engine], model, data, tick)
        bpc = bits_per_char(model, weights, test_ids)
        results.append(
            Result(
                "rhn_charlm",
                engine,
                [bits(v) for v in losses],
                "held-out bpc",
                bpc,
                seconds,
                "< 3.0",
                bpc < 3.0,
                {"units": units, "depth": depth, "window": length, "batch": BATCH, "lr": LR},
            )
        )
        print(f"{engine} sample: {sample(model, weights, 'Alice ', 120 if not args.smoke else 20)!r}")
    finish("rhn_charlm", "RHN character LM on Alice (bits per character)", results, args, "bits per character")
    return results


if __name__ == "__main__":
    main()
