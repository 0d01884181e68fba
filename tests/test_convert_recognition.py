"""How the converters recognise a built-in cell in an rshop model: structurally (rshop_core.patterns),
reading its options and which parameter plays which role from the step graph, and saying why a step
that is not one cell is refused. Numbers are checked against the numpy engine running the original."""

from __future__ import annotations

import numpy as np
import pytest

from rshop_core import Input, RecurrentModel, RecurrentSequential
from rshop_core import functional as F
from rshop_core.cells import GRUCell, LSTMCell, SimpleRNNCell
from rshop_core.convert.common import build_model, describe, describe_stack
from rshop_core.errors import RshopConfigError
from rshop_core.initializers import RandomNormal
from rshop_core.layers import Layer

BIAS = RandomNormal(0.0, 0.5)  # non-zero biases, so a bias read in the wrong role shows


def data(batch=3, time=6, features=4):
    return np.random.default_rng(1).standard_normal((batch, time, features)).astype("float32")


def local(weights):
    return {k.rsplit("/", 1)[-1]: v for k, v in weights.items()}


# (cell class, its arguments, what describe must read: every option that differs from the defaults)
OPTIONS = {
    "rnn_linear": (SimpleRNNCell, dict(activation="linear")),
    "rnn_softmax_no_bias": (SimpleRNNCell, dict(activation="softmax", use_bias=False)),
    "rnn_elu_dropout": (SimpleRNNCell, dict(activation="elu", dropout=0.3, recurrent_dropout=0.2)),
    "gru_reset_before": (GRUCell, dict(reset_after=False, activation="softsign", recurrent_activation="hard_sigmoid")),
    "gru_reset_before_no_bias": (GRUCell, dict(reset_after=False, use_bias=False, recurrent_dropout=0.4)),
    "gru_linear": (GRUCell, dict(activation="linear", recurrent_activation="linear")),
    "gru_no_bias_dropout": (GRUCell, dict(use_bias=False, dropout=0.1)),
    "lstm_relu_dropouts": (LSTMCell, dict(activation="relu", dropout=0.25, recurrent_dropout=0.1)),
    "lstm_linear_no_bias": (LSTMCell, dict(activation="linear", recurrent_activation="linear", use_bias=False)),
    "lstm_tanh_tanh": (LSTMCell, dict(recurrent_activation="tanh")),
    "lstm_regularized": (LSTMCell, dict(kernel_regularizer="l2", bias_regularizer={"l1": 0.1, "l2": 0.2})),
}


@pytest.mark.parametrize("case", sorted(OPTIONS))
def test_describe_reads_every_option(case):
    cls, kwargs = OPTIONS[case]
    kwargs = {**kwargs, "bias_initializer": BIAS} if kwargs.get("use_bias", True) else kwargs
    model = cls(5, input_dim=4, **kwargs).get_layer(seed=3, return_sequences=True)
    spec = describe(model, "test")
    kind = {SimpleRNNCell: "rnn", GRUCell: "gru", LSTMCell: "lstm"}[cls]
    want = {
        "kind": kind,
        "units": 5,
        "input_dim": 4,
        "activation": kwargs.get("activation", "tanh"),
        "recurrent_activation": kwargs.get("recurrent_activation", "sigmoid"),
        "use_bias": kwargs.get("use_bias", True),
        "reset_after": kwargs.get("reset_after", True),
        "dropout": kwargs.get("dropout", 0.0),
        "recurrent_dropout": kwargs.get("recurrent_dropout", 0.0),
    }
    assert {k: getattr(spec, k) for k in want} == want
    regs = {"kernel": {"l1": 0.0, "l2": 0.01}, "bias": {"l1": 0.1, "l2": 0.2}} if "regularized" in case else {}
    assert spec.regularizers == regs
    w = local(model.get_weights())
    assert sorted(spec.weights) == sorted(w) and all(np.array_equal(spec.weights[k], w[k]) for k in w)
    # the spec rebuilds a model computing the same numbers (inference: dropout off)
    again = build_model(spec, "again", return_sequences=True)
    x = data()
    np.testing.assert_array_equal(again.lower("numpy")(x), model.lower("numpy")(x))


def _hand_lstm():
    """An LSTM step written by hand: other weight names, ops in another order than LSTMCell's."""

    class Weights(Layer):
        def __call__(self, _):
            return (
                self.add_weight("w_h", (5, 20), "orthogonal"),
                self.add_weight("w_x", (4, 20), "glorot_uniform"),
                self.add_weight("b", (20,), BIAS),
            )

    x, h, c = Input((4,), name="x"), Input((5,), name="h"), Input((5,), name="c")
    r, k, b = Weights(name="hand")(x)
    zi, zf, zg, zo = F.split(F.add(b, F.add(F.matmul(h, r), F.matmul(x, k))), 4)
    c_new = F.add(F.multiply(F.tanh(zg), F.sigmoid(zi)), F.multiply(c, F.sigmoid(zf)))
    h_new = F.multiply(F.tanh(c_new), F.sigmoid(zo))
    return RecurrentModel(
        input=x, initial_states=[h, c], output=h_new, final_states=[h_new, c_new], seed=6, return_sequences=True
    )


def test_hand_written_step_is_recognised_by_role():
    model = _hand_lstm()
    spec = describe(model, "test")
    w = model.get_weights()
    assert (spec.kind, spec.units, spec.input_dim, spec.use_bias) == ("lstm", 5, 4, True)
    assert np.array_equal(spec.weights["kernel"], w["hand/w_x"])
    assert np.array_equal(spec.weights["recurrent_kernel"], w["hand/w_h"])
    assert np.array_equal(spec.weights["bias"], w["hand/b"])
    x = data()
    again = build_model(spec, "cell", return_sequences=True)
    np.testing.assert_allclose(again.lower("numpy")(x), model.lower("numpy")(x), atol=1e-6)


def test_hand_written_step_converts_to_torch():
    torch = pytest.importorskip("torch", reason="torch is not installed in this session: to_torch needs it")
    from rshop_core.convert import to_torch

    model = _hand_lstm()
    module = to_torch(model)
    x = data()
    with torch.no_grad():
        y = module(torch.from_numpy(x))[0].numpy()
    np.testing.assert_allclose(y, model.lower("numpy")(x), atol=1e-5)


def test_a_stack_is_read_cell_by_cell():
    seq = RecurrentSequential(seed=2)
    seq.add(GRUCell(5, input_dim=4, reset_after=False, bias_initializer=BIAS))
    seq.add(SimpleRNNCell(3, activation="relu", dropout=0.5))
    seq.add(LSTMCell(2, use_bias=False, recurrent_activation="hard_sigmoid"))
    specs = describe_stack(seq, "test")
    got = [
        (s.kind, s.input_dim, s.units, s.activation, s.recurrent_activation, s.use_bias, s.reset_after, s.dropout)
        for s in specs
    ]
    assert got == [
        ("gru", 4, 5, "tanh", "sigmoid", True, False, 0.0),
        ("rnn", 5, 3, "relu", "sigmoid", True, True, 0.5),
        ("lstm", 3, 2, "tanh", "hard_sigmoid", False, True, 0.0),
    ]
    w = seq.get_weights()
    for spec, cell in zip(specs, seq.cells):
        mine = {k.rsplit("/", 1)[-1]: v for k, v in w.items() if k.startswith(cell.name + "/")}
        assert sorted(spec.weights) == sorted(mine) and all(np.array_equal(spec.weights[k], mine[k]) for k in mine)


def test_large_cells_are_recognised():
    """Recognition does not depend on size (bench/convert_speed.py measures it); GRU(512) reads as one."""
    model = GRUCell(512, input_dim=16).get_layer(seed=0)
    spec = describe(model, "test")
    assert (spec.kind, spec.units, spec.input_dim, spec.weights["recurrent_kernel"].shape) == (
        "gru",
        512,
        16,
        (512, 1536),
    )


# -- refusals say why -------------------------------------------------------------------------
def _lstm_step(extra_on_c=False, extra_on_output=False, dtype="float32"):
    x, h, c = Input((4,), dtype, name="x"), Input((5,), dtype, name="h"), Input((5,), dtype, name="c")
    y, (h_new, c_new) = LSTMCell(5, name="lstm_cell")(x, [h, c])
    if extra_on_c:
        c_new = F.multiply(c_new, 0.5)  # one op more than an LSTMCell: the carried c is halved
    if extra_on_output:
        y = F.multiply(y, 2.0)
    return RecurrentModel(input=x, initial_states=[h, c], output=y, final_states=[h_new, c_new], seed=0, name="odd")


def _two_cells():
    x, h, c, g = Input((4,), name="x"), Input((5,), name="h"), Input((5,), name="c"), Input((3,), name="g")
    y, (h_new, c_new) = LSTMCell(5)(x, [h, c])
    y, (g_new,) = GRUCell(3)(y, [g])
    return RecurrentModel(
        input=x, initial_states=[h, c, g], output=y, final_states=[h_new, c_new, g_new], seed=0, name="odd"
    )


REFUSED = {
    "extra_op_on_state": (
        lambda: _lstm_step(extra_on_c=True),
        "the first cell's step (states from #0) is not a standard LSTM, GRU (reset_after) or tanh/relu RNN cell",
    ),
    "extra_op_on_output": (
        lambda: _lstm_step(extra_on_output=True),
        "the step's output is not the last cell's new hidden state",
    ),
    "two_cells": (_two_cells, "it runs 2 cells one after the other (lstm(4->5) -> gru(5->3))"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refusal_says_why(case):
    build, why = REFUSED[case]
    with pytest.raises(RshopConfigError) as e:
        describe(build(), "to_torch")
    msg = str(e.value)
    assert type(e.value) is RshopConfigError
    assert msg.startswith(
        "to_torch: expected a model whose step is exactly one built-in cell (SimpleRNNCell, "
        "GRUCell or LSTMCell), received 'odd', whose step graph is not one: "
    ), msg
    assert why in msg and "Convert a model made by cell.get_layer(" in msg, msg


def test_float64_model_is_refused_naming_the_dtype():
    with pytest.raises(RshopConfigError) as e:
        describe(_lstm_step(dtype="float64"), "to_keras")
    assert type(e.value) is RshopConfigError
    assert str(e.value).startswith("to_keras: expected a float32 model, received 'odd' (float64)"), str(e.value)
