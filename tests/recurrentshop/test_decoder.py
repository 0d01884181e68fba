"""RecurrentShop's docs/decoder.md: decode a (batch, 20) vector into 10 steps of a SimpleRNNCell(25)."""

from __future__ import annotations

import numpy as np

from rshop_core import RecurrentSequential
from rshop_core.cells import SimpleRNNCell

from .port import agrees

X = np.random.default_rng(10).standard_normal((3, 20))


def decoder(**options):
    rnn = RecurrentSequential(decode=True, output_length=10, seed=10, **options)
    rnn.add(SimpleRNNCell(25, input_dim=20))
    return rnn


DOC = decoder()  # the doc's model, as written
EXPLICIT = decoder(return_sequences=True, return_states=True)


def test_decoder_shape_as_documented(engine):
    (y,) = agrees(DOC, engine, X, "decoder.md")
    assert y.shape == (3, 10, 25)  # print(K.shape(y))  # >> (None, 10, 25)


def test_decoder_with_return_sequences(engine):
    """What the doc means, with return_sequences=True spelled out: every step's output and the final h."""
    y, h = agrees(EXPLICIT, engine, X, "decoder.md, return_sequences=True")
    assert y.shape == (3, 10, 25) and h.shape == (3, 25)
    np.testing.assert_allclose(y[:, -1], h, atol=1e-6)  # a SimpleRNN's output is its state


def test_decoder_by_hand():
    """The reference against decode's meaning: the same x at each of the 10 steps."""
    w = EXPLICIT.get_weights()
    kernel = next(v for k, v in w.items() if k.endswith("/kernel") and "recurrent" not in k)
    recurrent = next(v for k, v in w.items() if k.endswith("/recurrent_kernel"))
    bias = next(v for k, v in w.items() if k.endswith("/bias"))
    h, ys = np.zeros((3, 25)), []
    for _ in range(10):
        h = np.tanh(X @ kernel + h @ recurrent + bias)
        ys.append(h)
    y, _ = EXPLICIT.lower("numpy", "float64")(X)
    np.testing.assert_allclose(y, np.stack(ys, axis=1), atol=1e-12)
