"""RecurrentShop's docs/readout.md: the previous output fed back, in a RecurrentSequential and by hand."""

from __future__ import annotations

import numpy as np
import pytest

from rshop_core import Input, RecurrentModel, RecurrentSequential
from rshop_core.cells import GRUCell, LSTMCell, SimpleRNNCell
from rshop_core.layers import add

from .port import agrees

RNG = np.random.default_rng(20)
X = RNG.standard_normal((2, 5, 10))


def sequential(mode):
    """Section "Readout in RecurrentSequential": the previous output merged with the input by ``mode``."""
    rnn = RecurrentSequential(readout=mode, return_sequences=True, seed=20)
    rnn.add(LSTMCell(10, input_dim=10))
    rnn.add(GRUCell(10))
    rnn.add(SimpleRNNCell(10))
    return rnn


SEQUENTIAL = {mode: sequential(mode) for mode in ("add", "mul", "avg", "max")}


@pytest.mark.parametrize("mode", sorted(SEQUENTIAL))
def test_readout_in_recurrent_sequential(engine, mode):
    (y,) = agrees(SEQUENTIAL[mode], engine, X, f"readout.md {mode}")
    assert y.shape == (2, 5, 10)


def test_readout_changes_the_result():
    """The readout is wired in: the same stack without it (same seed, same weights) computes other numbers."""
    plain = RecurrentSequential(return_sequences=True, seed=20)
    plain.add(LSTMCell(10, input_dim=10))
    plain.add(GRUCell(10))
    plain.add(SimpleRNNCell(10))
    with_readout = SEQUENTIAL["add"]
    assert sorted(plain.get_weights()) == sorted(with_readout.get_weights())
    plain.set_weights(with_readout.get_weights())
    a = plain.lower("numpy", "float64")(X)
    b = with_readout.lower("numpy", "float64")(X)
    np.testing.assert_allclose(a[:, 0], b[:, 0], atol=1e-12)  # step 0 reads a zero readout
    assert np.max(np.abs(a[:, 1:] - b[:, 1:])) > 1e-3


def functional():
    """Section "Readout in RecurrentModel": half the readout added to x, then a 3-deep LSTM sharing (h, c)."""
    x = Input((10,))
    h_tm1 = Input((10,))
    c_tm1 = Input((10,))
    readout_input = Input((10,))

    readout_half = 0.5 * readout_input  # RecurrentShop: Lambda(lambda x: 0.5 * x)
    lstms_input = add([x, readout_half])

    depth = 3
    cells = [LSTMCell(10) for _ in range(depth)]  # the doc's `LSTM(10)` is a cell here
    lstms_output, h, c = lstms_input, h_tm1, c_tm1
    for cell in cells:
        lstms_output, (h, c) = cell(lstms_output, [h, c])
    y = lstms_output
    return RecurrentModel(
        input=x,
        initial_states=[h_tm1, c_tm1],
        output=y,
        final_states=[h, c],
        readout_input=readout_input,
        return_sequences=True,
        return_states=True,
        seed=21,
    )


FUNCTIONAL = functional()


def test_readout_in_recurrent_model(engine):
    y, h, c = agrees(FUNCTIONAL, engine, X, "readout.md RecurrentModel")
    assert y.shape == (2, 5, 10) and h.shape == c.shape == (2, 10)


def test_readout_in_recurrent_model_initial_readout(engine):
    """``initial_readout=``: what step 0 reads instead of zeros."""
    agrees(FUNCTIONAL, engine, X, "readout.md initial_readout", initial_readout=RNG.standard_normal((2, 10)))
