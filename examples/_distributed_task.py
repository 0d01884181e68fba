"""The task every data-parallel example trains (examples/distributed_*.py): one model and one batch maker,
so that the four runtimes train the same thing and each script shows only its runtime's own code.

The model is a custom gated cell written as one step, with dropout on its input, a learned initial state and
``remat`` (gradient checkpointing every 4 steps); it learns to output its input of the previous step.
"""

from __future__ import annotations

import numpy as np

from rshop_core import Input, RecurrentModel, initializers
from rshop_core import functional as F
from rshop_core.layers import Dense

STEPS_T, FEATURES, UNITS = 12, 2, 16


def build_model() -> RecurrentModel:
    x_t, h = Input((FEATURES,), name="x"), Input((UNITS,), name="h")
    xd = F.dropout(x_t, 0.1, name="drop_x")
    z = F.sigmoid(Dense(UNITS, name="wz")(xd) + Dense(UNITS, use_bias=False, name="uz")(h))
    n = F.tanh(Dense(UNITS, name="wn")(xd) + Dense(UNITS, name="un")(h))
    h_new = z * h + (1.0 - z) * n
    return RecurrentModel(
        input=x_t, initial_states=[h], output=Dense(1, name="readout")(h_new), final_states=[h_new],
        return_sequences=True, remat=4, state_initializer=initializers.Learned("zeros"), seed=0,
    )  # fmt: skip


def batch(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """x (size, T, 2) and the target: x[..., 0] one step later (0 at the first step)."""
    x = rng.standard_normal((size, STEPS_T, FEATURES)).astype("float32")
    y = np.concatenate([np.zeros((size, 1, 1), "float32"), x[:, :-1, :1]], axis=1)
    return x, y
