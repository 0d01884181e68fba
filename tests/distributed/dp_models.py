"""The four models every data-parallel test runs, their data and their loss weights (numpy only: each
engine's child process imports this before its framework).

- ``lstm``: an LSTM whose initial ``h`` is learned (``initializers.Learned``), returning the sequence;
- ``dropout_cell``: a custom gated cell with dropout on its input and its state, under ``remat=2``;
- ``bidirectional``: ``Bidirectional`` over a GRU, concatenated;
- ``stateful``: an LSTM with ``stateful=True``, called twice (the second call starts from the first's states).

The loss of a call is ``sum(y * W) / B`` for a fixed random ``W`` of the global batch (``B`` rows): a
replica's part is ``sum(y_r * W_r) / B``, so summed over replicas it is the global loss, and averaged over
replicas ``sum(y_r * W_r) / b`` (b = B / replicas rows each) is too — what torch DDP averages.
"""

from __future__ import annotations

import numpy as np

from rshop_core import Bidirectional, Input, RecurrentModel, initializers
from rshop_core import functional as F
from rshop_core.cells import GRUCell, LSTMCell
from rshop_core.layers import Dense

GLOBAL_BATCH, STEPS, FEATURES = 4, 5, 3
NAMES = ("lstm", "dropout_cell", "bidirectional", "stateful")
TOL = 1e-6  # max |g_parallel - g_one_device| in float32, absolute (gradients are O(0.1..1) here)
SEED = 11  # the dropout seed of both runs


def dropout_cell() -> RecurrentModel:
    """A custom gated cell, dropout on x (0.3) and on h (0.2), checkpointed every 2 steps."""
    x_t, h = Input((FEATURES,), name="x"), Input((6,), name="h")
    xd, hd = F.dropout(x_t, 0.3, name="drop_x"), F.dropout(h, 0.2, name="drop_h")
    z = F.sigmoid(Dense(6, name="wz")(xd) + Dense(6, use_bias=False, name="uz")(hd))
    n = F.tanh(Dense(6, name="wn")(xd) + Dense(6, name="un")(hd))
    h_new = z * h + (1.0 - z) * n
    return RecurrentModel(
        input=x_t, initial_states=[h], output=h_new, final_states=[h_new], return_sequences=True, remat=2, seed=4
    )


def build(name: str) -> RecurrentModel | Bidirectional:
    if name == "lstm":
        return LSTMCell(5, input_dim=FEATURES).get_layer(
            seed=1, return_sequences=True, state_initializer=[initializers.Learned("glorot_uniform")]
        )
    if name == "dropout_cell":
        return dropout_cell()
    if name == "bidirectional":
        return Bidirectional(GRUCell(4, input_dim=FEATURES).get_layer(seed=2, return_sequences=True))
    if name == "stateful":
        return LSTMCell(5, input_dim=FEATURES).get_layer(seed=3, return_sequences=True, stateful=True)
    raise ValueError(name)


def data(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(x1, x2, W)``: the global batch of the first and second call, and the loss weights."""
    rng = np.random.default_rng([7, NAMES.index(name)])
    x1, x2 = (rng.standard_normal((GLOBAL_BATCH, STEPS, FEATURES)).astype("float32") for _ in range(2))
    width = {"lstm": 5, "dropout_cell": 6, "bidirectional": 8, "stateful": 5}[name]
    w = rng.standard_normal((GLOBAL_BATCH, STEPS, width)).astype("float32")
    return x1, x2, w


def max_diff(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    """max |a - b| over every parameter (the names must agree)."""
    assert sorted(a) == sorted(b), (sorted(a), sorted(b))
    return float(max(np.abs(np.asarray(a[k], "float64") - np.asarray(b[k], "float64")).max() for k in a))


def max_abs(a: dict[str, np.ndarray]) -> float:
    return float(max(np.abs(np.asarray(v)).max() for v in a.values()))


def carried(name: str) -> RecurrentModel:
    """The ``stateful`` model without ``stateful``, returning its states: what a runtime whose replicas share
    one layer object (tf.distribute, Keras) runs, carrying the states itself (``initial_state=``)."""
    assert name == "stateful", name
    return LSTMCell(5, input_dim=FEATURES).get_layer(seed=3, return_sequences=True, return_states=True)
