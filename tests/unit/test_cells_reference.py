"""The numpy engine's built-in cells equal the textbook equations written out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from rshop_core.cells import GRUCell, LSTMCell, SimpleRNNCell
from rshop_core.initializers import RandomNormal


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def run(model, x):
    return model.lower("numpy", "float64")(x)


X = np.random.default_rng(0).standard_normal((3, 6, 4))


def test_simple_rnn():
    m = SimpleRNNCell(5, input_dim=4, activation="relu").get_layer(seed=1, return_sequences=True)
    w = m.get_weights()
    h = np.zeros((3, 5))
    for t in range(6):
        h = np.maximum(
            X[:, t] @ w["simple_rnn_cell/kernel"]
            + h @ w["simple_rnn_cell/recurrent_kernel"]
            + w["simple_rnn_cell/bias"],
            0,
        )
    np.testing.assert_allclose(run(m, X)[:, -1], h, atol=1e-6)


def test_lstm_gate_order_and_forget_bias():
    m = LSTMCell(5, input_dim=4).get_layer(seed=2, return_states=True)
    w = {k.split("/")[1]: v.astype(np.float64) for k, v in m.get_weights().items()}
    np.testing.assert_array_equal(w["bias"], np.r_[np.zeros(5), np.ones(5), np.zeros(10)])
    h = c = np.zeros((3, 5))
    for t in range(6):
        z = X[:, t] @ w["kernel"] + h @ w["recurrent_kernel"] + w["bias"]
        i, f, g, o = z[:, :5], z[:, 5:10], z[:, 10:15], z[:, 15:]
        c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
        h = sigmoid(o) * np.tanh(c)
    y, _h_out, c_out = run(m, X)
    np.testing.assert_allclose(y, h, atol=1e-6)
    np.testing.assert_allclose(c_out, c, atol=1e-6)


@pytest.mark.parametrize("reset_after", [True, False])
def test_gru(reset_after):
    m = GRUCell(5, input_dim=4, reset_after=reset_after, bias_initializer=RandomNormal(0, 1)).get_layer(seed=3)
    w = {k.split("/")[1]: v.astype(np.float64) for k, v in m.get_weights().items()}
    k, r = w["kernel"], w["recurrent_kernel"]
    b_in, b_rec = (w["bias"][0], w["bias"][1]) if reset_after else (w["bias"], np.zeros(15))
    h = np.zeros((3, 5))
    for t in range(6):
        xz, xr, xh = np.split(X[:, t] @ k + b_in, 3, axis=-1)
        uz, ur, uh = np.split(r, 3, axis=-1)
        bz, br, bh = np.split(b_rec, 3)
        z = sigmoid(xz + h @ uz + bz)
        rr = sigmoid(xr + h @ ur + br)
        n = np.tanh(xh + rr * (h @ uh + bh)) if reset_after else np.tanh(xh + (rr * h) @ uh)
        h = z * h + (1 - z) * n
    np.testing.assert_allclose(run(m, X), h, atol=1e-6)
