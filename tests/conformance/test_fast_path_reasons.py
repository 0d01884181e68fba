"""torch's fast path and the converters share one structural matcher (rshop_core.patterns): a step
that is a built-in cell torch's fused kernels do not compute (other activations, GRU
reset_after=False, a stack holding one) is recognised as that cell, runs the generic loop with the
reference's numbers, and explain() names the cell and its options."""

from __future__ import annotations

import numpy as np
import pytest

from rshop_core import RecurrentSequential
from rshop_core.cells import GRUCell, LSTMCell, SimpleRNNCell
from rshop_core.errors import RshopNotImplementedError

from .conftest import assert_close, only_engine, reference, run
from .tolerances import FORWARD_ATOL

D = 4
NOT_STANDARD = "is not a standard LSTM, GRU (reset_after) or tanh/relu RNN cell"
CELLS = {  # model, the reason's words
    "gru_reset_before": (
        lambda: GRUCell(5, input_dim=D, reset_after=False).get_layer(seed=1),
        "the first cell, gru(4->5, activation=tanh, recurrent_activation=sigmoid, reset_after=False),",
    ),
    "rnn_elu": (
        lambda: SimpleRNNCell(5, input_dim=D, activation="elu", use_bias=False).get_layer(seed=1),
        "the first cell, rnn(4->5, no bias, activation=elu),",
    ),
    "lstm_hard_sigmoid": (
        lambda: LSTMCell(5, input_dim=D, recurrent_activation="hard_sigmoid").get_layer(seed=1),
        "the first cell, lstm(4->5, activation=tanh, recurrent_activation=hard_sigmoid),",
    ),
    "stack_second": (
        lambda: RecurrentSequential(seed=1).add(LSTMCell(5, input_dim=D)).add(SimpleRNNCell(3, activation="softsign")),
        "the #2 cell, rnn(5->3, activation=softsign),",
    ),
}


@pytest.fixture
def torch_engine(request):
    return only_engine(request, "torch", "the fused fast path")


@pytest.mark.parametrize("case", sorted(CELLS))
def test_cell_without_fused_kernel_says_which(torch_engine, case):
    build, words = CELLS[case]
    model = build()
    layer = model.lower("torch")
    e = layer.explain()
    assert e.path.startswith("generic loop") and f"{words} {NOT_STANDARD}" in e.why, str(e)
    x = np.random.default_rng(0).standard_normal((3, 6, D))
    assert_close(run(model, "torch", x, layer=layer), reference(model, x), FORWARD_ATOL["float32"], case)
    with pytest.raises(RshopNotImplementedError, match="fast_path='require'"):
        model.lower("torch", fast_path="require")
