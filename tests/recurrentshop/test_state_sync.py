"""RecurrentShop's docs/state_sync.md: separate state spaces by default, one shared set with state_sync=True."""

from __future__ import annotations

import numpy as np

from rshop_core import RecurrentSequential
from rshop_core.cells import GRUCell, LSTMCell
from rshop_core.layers import Dense

from .port import agrees

RNG = np.random.default_rng(40)
X = RNG.standard_normal((2, 4, 5))


def separate():
    rnn = RecurrentSequential(return_sequences=True, return_states=True, seed=40)
    rnn.add(GRUCell(10, input_dim=5))
    rnn.add(Dense(5))
    rnn.add(LSTMCell(10))
    return rnn


def synced():
    rnn = RecurrentSequential(state_sync=True, return_sequences=True, return_states=True, seed=41)
    rnn.add(LSTMCell(10, input_dim=5))
    rnn.add(LSTMCell(10))
    rnn.add(LSTMCell(10))
    rnn.add(LSTMCell(10))
    return rnn


SEPARATE, SYNCED = separate(), synced()


def test_state_counts_today():
    """GRUCell: 1 state, Dense: 0, LSTMCell: 2 -> 3; four synced LSTMCells share 2."""
    assert len(SEPARATE.build().state_specs) == 3
    assert len(SYNCED.build().state_specs) == 2


def test_num_states_as_documented():
    assert SEPARATE.num_states == 3  # print(rnn.num_states)  # >> 3
    assert SYNCED.num_states == 2  # print(rnn.num_states)  # >> 2


def test_separate_state_spaces(engine):
    y, h_gru, h_lstm, c_lstm = agrees(SEPARATE, engine, X, "state_sync.md separate")
    assert y.shape == (2, 4, 10) and h_gru.shape == h_lstm.shape == c_lstm.shape == (2, 10)


def test_synced_state_space(engine):
    y, h, c = agrees(SYNCED, engine, X, "state_sync.md state_sync=True")
    assert y.shape == (2, 4, 10) and h.shape == c.shape == (2, 10)
    np.testing.assert_allclose(y[:, -1], h, atol=1e-6)  # the last cell wrote the shared h


def test_synced_cells_read_each_others_states():
    """Cell i reads the (h, c) cell i-1 just wrote: one step by hand with the LSTM equations."""

    def sigmoid(z):
        return 1 / (1 + np.exp(-z))

    w = SYNCED.get_weights()
    prefixes = sorted({k.rsplit("/", 1)[0] for k in w})
    assert len(prefixes) == 4
    value, h, c = X[:, 0], np.zeros((2, 10)), np.zeros((2, 10))
    for p in prefixes:  # the cells, in the order they were added (lstm_cell, lstm_cell_1, ...)
        z = value @ w[f"{p}/kernel"] + h @ w[f"{p}/recurrent_kernel"] + w[f"{p}/bias"]
        i, f, g, o = np.split(z, 4, axis=-1)
        c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
        h = sigmoid(o) * np.tanh(c)
        value = h
    _, h_ref, c_ref = SYNCED.lower("numpy", "float64")(X[:, :1])
    np.testing.assert_allclose(h_ref, h, atol=1e-12)
    np.testing.assert_allclose(c_ref, c, atol=1e-12)
