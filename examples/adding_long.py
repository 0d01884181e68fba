"""The adding problem at T = 200: an LSTM against a custom forget-gate-only cell, trained on every engine.

Each sequence holds T random values and two markers; the target is the sum of the two marked values
(Hochreiter & Schmidhuber 1997). Guessing 1.0 always gives a mean squared error of about 0.167; a model
that solves the task reaches well below 0.01. The data come from examples/demo.py (the same task at T = 12).

The custom cell is JANET (van der Westhuizen & Lasenby 2018, "The unreasonable effectiveness of the forget
gate"): an LSTM reduced to its forget gate, written as one step with rshop's functional API.

    python examples/adding_long.py [--engine jax|torch|tensorflow|all] [--steps 1500] [--smoke] [--plot]

Training uses each ecosystem's own tools: optax on jax, torch.optim on torch, and on tensorflow Keras'
Adam through ``Model.fit`` with the model inside ``rshop_backends.keras.RecurrentLayer``. Every engine
starts from the same weights (the rshop model is built once with a seed) and sees the same batches.
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
    finish,
    progress,
    timed,
    trainers,
)
from demo import adding_problem

from rshop_core import Input, RecurrentModel, RecurrentSequential
from rshop_core import functional as F
from rshop_core import initializers as I
from rshop_core.cells import LSTMCell
from rshop_core.layers import Dense

LR, BATCH = 1e-2, 64
SIZES = {"full": (200, 32), "smoke": (20, 8)}  # (T, units)


def lstm_model(units: int, seed: int = 0) -> RecurrentSequential:
    """Keras' LSTM (its defaults: unit_forget_bias, orthogonal recurrent kernel), then Dense(1) on its last output."""
    model = RecurrentSequential(name="lstm", seed=seed)
    return model.add(LSTMCell(units, input_dim=2)).add(Dense(1, name="readout"))


def janet_model(units: int, seed: int = 0) -> RecurrentModel:
    """JANET as one step: ``s = sigmoid(x W_s + h U_s + b_s - 1)``, ``h' = s h + (1 - s) tanh(x W_c + h U_c + b_c)``.

    The gate's bias starts at 2, so ``s`` starts near sigmoid(1) = 0.73 after the paper's shift of 1: a gate
    that starts open keeps the state over long spans, as Keras' unit_forget_bias does for the LSTM."""
    x_t, h = Input((2,), name="x"), Input((units,), name="h")
    s = F.sigmoid(
        Dense(units, name="w_s", bias_initializer=I.Constant(2.0))(x_t)
        + Dense(units, use_bias=False, name="u_s", kernel_initializer="orthogonal")(h)
        - 1.0
    )
    c = F.tanh(
        Dense(units, name="w_c")(x_t) + Dense(units, use_bias=False, name="u_c", kernel_initializer="orthogonal")(h)
    )
    h_new = s * h + (1.0 - s) * c
    return RecurrentModel(
        input=x_t,
        initial_states=[h],
        output=Dense(1, name="readout")(h_new),
        final_states=[h_new],
        name="janet",
        seed=seed,
    )


TRAINERS = trainers(LR, "mse")  # optax / torch.optim / Keras fit: examples/_common.py


def main(argv: list[str] | None = None) -> list[Result]:
    args = arguments(__doc__, 1500, argv)
    length, units = SIZES["smoke" if args.smoke else "full"]
    data = batches(lambda rng: adding_problem(rng, BATCH, length), args.steps, seed=0)
    x_test, y_test = adding_problem(np.random.default_rng(1), 256, length)
    guess = float(np.mean((1.0 - y_test) ** 2))
    print(f"adding problem, T = {length}, {units} units; always guessing 1.0 gives test mse {guess:.4f}")
    results = []
    for build in (lstm_model, janet_model):
        for engine in args.engines:
            model = build(units, seed=0)  # the same initial weights on every engine
            (weights, losses), seconds = timed(
                TRAINERS[engine], model, data, progress(args.steps, f"{model.name} {engine}", args.quiet)
            )
            check = model.lower("numpy")
            check.set_weights(weights)
            mse = float(np.mean((check(x_test) - y_test) ** 2))
            target = 0.01
            results.append(
                Result(
                    f"adding_{model.name}",
                    engine,
                    losses,
                    "test mse",
                    mse,
                    seconds,
                    f"< {target}",
                    mse < target,
                    {"T": length, "units": units, "batch": BATCH, "lr": LR},
                )
            )
    finish("adding_long", f"adding problem, T={length}: LSTM vs JANET", results, args, "mse")
    return results


if __name__ == "__main__":
    main()
