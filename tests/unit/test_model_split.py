"""The pieces RecurrentModel and the cells are made of: the deferred constructor, the one weights
module, the validator that building and loading share, the explicit cell option checks."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from rshop_core import Input, RecurrentModel, serialization
from rshop_core import functional as F
from rshop_core.cells import GRUCell, LSTMCell, SimpleRNNCell
from rshop_core.errors import RshopConfigError, RshopFormatError, RshopShapeError
from rshop_core.layers import Dense
from rshop_core.weights import check_file_weights, check_weights

X = np.random.default_rng(0).standard_normal((2, 4, 3))


def _step(input_dim):
    x, h = Input((input_dim,), name="x"), Input((5,), name="h")
    new = F.tanh(F.add(Dense(5, name="inp")(x), Dense(5, use_bias=False, name="rec")(h)))
    return x, new, [h], [new], None


def _run(model):
    return model.lower("numpy", "float64")(X)


def test_deferred_builds_the_same_model_as_the_direct_constructor():
    lazy = RecurrentModel.deferred(_step, return_sequences=True, name="m", seed=4)
    assert not lazy.built and "not built" in repr(lazy)
    lazy.build(3)
    x, y, states, new, _ = _step(3)
    direct = RecurrentModel(x, y, states, new, return_sequences=True, name="m", seed=4)
    assert lazy.built and lazy.options == direct.options and lazy.params == direct.params
    got, want = _run(lazy), _run(direct)
    assert got.shape == (2, 4, 5)
    np.testing.assert_allclose(got, want, rtol=0, atol=0)
    w = direct.get_weights()  # and the loop itself, by hand, in float64
    h = np.zeros((2, 5))
    for t in range(4):
        h = np.tanh(X[:, t] @ w["inp/kernel"] + w["inp/bias"] + h @ w["rec/kernel"])
        np.testing.assert_allclose(got[:, t], h, rtol=1e-12, atol=1e-12)


def test_deferred_refuses_another_input_dim_once_built():
    lazy = RecurrentModel.deferred(_step, name="m", seed=4).build(3)
    assert lazy.build(3) is lazy
    with pytest.raises(
        RshopShapeError,
        match=r"RecurrentModel 'm': expected input_dim 3 \(already built\), "
        r"received 4\.",
    ):
        lazy.build(4)


def test_deferred_checks_keywords_like_the_constructor():
    with pytest.raises(
        RshopConfigError,
        match=r"RecurrentModel, keyword 'retrun_sequences': .*"
        r"Did you mean 'return_sequences'\?",
    ):
        RecurrentModel.deferred(_step, retrun_sequences=True)
    with pytest.raises(
        RshopConfigError,
        match=r"RecurrentModel, keyword 'retrun_sequences': .*"
        r"Did you mean 'return_sequences'\?",
    ):
        RecurrentModel(*_step(3)[:4], retrun_sequences=True)


def test_a_builder_is_no_longer_an_input():
    with pytest.raises(
        RshopConfigError,
        match=r"RecurrentModel 'recurrent_model': expected input to be an rshop "
        r"Input, received <function",
    ):
        RecurrentModel(_step, None)


def test_cell_layer_is_deferred_until_input_dim():
    layer = GRUCell(4, name="g_cell").get_layer(seed=1)
    assert not layer.built and layer.name == "g"
    layer.build(3)
    assert layer.input_shape == (3,) and sorted(layer.params) == [
        "g_cell/bias",
        "g_cell/kernel",
        "g_cell/recurrent_kernel",
    ]


@pytest.mark.parametrize("cell", [SimpleRNNCell, GRUCell, LSTMCell])
def test_cell_options_are_checked_by_kind(cell):
    with pytest.raises(
        RshopConfigError,
        match=rf"{cell.__name__} '\w+' recurrent_dropout: expected a rate in "
        r"\[0, 1\), received 1.0\.",
    ):
        cell(2, recurrent_dropout=1.0)
    with pytest.raises(RshopConfigError, match=rf"{cell.__name__} '\w+' bias_initializer"):
        cell(2, bias_initializer="no_such_initializer")
    c = cell(2, dropout=0, use_bias=0, kernel_regularizer=None)
    assert c.dropout == 0.0 and isinstance(c.dropout, float) and c.use_bias is False


def test_model_cell_goes_through_cell_init():
    inner = LSTMCell(3, input_dim=2, name="inner").get_layer(seed=0)
    cell = inner.get_cell("nest")
    assert (cell.name, cell.units, cell.input_dim) == ("nest", None, 2)
    assert cell.state_names == ("nest/h", "nest/c") and cell.state_shapes() == [(3,), (3,)]
    with pytest.raises(RshopConfigError, match=r"ModelCell: expected a name of letters"):
        inner.get_cell("a b")
    with pytest.raises(RshopConfigError, match=r"ModelCell, keyword 'nmae': .*Did you mean 'name'\?"):
        type(cell)(inner, nmae="x")


def _model():
    x, y, states, new, _ = _step(3)
    return RecurrentModel(x, y, states, new, name="m", seed=2)


def test_check_weights_names_missing_and_unexpected():
    specs = _model().param_specs
    w = {k: np.zeros(s.shape, s.dtype) for k, s in specs.items()}
    w["extra"] = w.pop("rec/kernel")
    with pytest.raises(
        RshopConfigError,
        match=r"^m: expected weights named exactly .*received missing "
        r"\['rec/kernel'\], unexpected \['extra'\]\.$",
    ):
        check_weights("m", specs, w)
    w["rec/kernel"] = np.zeros((5, 4), "float32")
    del w["extra"]
    with pytest.raises(RshopShapeError, match=r"m, weight 'rec/kernel': expected shape \(5, 5\), received \(5, 4\)"):
        check_weights("m", specs, w)


def test_check_file_weights_is_a_format_error():
    specs = _model().param_specs
    w = {k: np.zeros(s.shape, s.dtype) for k, s in specs.items()}
    assert list(check_file_weights(specs, w, "model")) == list(specs)
    w["inp/bias"] = np.full((5,), np.nan, "float32")
    with pytest.raises(RshopFormatError, match=r"model: weight 'inp/bias': expected finite numbers"):
        check_file_weights(specs, w, "model")
    del w["inp/bias"]
    with pytest.raises(
        RshopFormatError,
        match=r"model: weights: expected exactly the parameters .*missing "
        r"\['inp/bias'\], unexpected \[\]",
    ):
        check_file_weights(specs, w, "model")


def _two_states():
    x, a, b = Input((2,), name="x"), Input((2,), name="a"), Input((2,), name="b")
    return x, F.add(x, a), [a, b], [F.add(x, a), b]


def test_building_and_loading_share_the_state_name_check():
    x, y, states, new = _two_states()
    doc = serialization.to_document(RecurrentModel(x, y, states, new, name="two", seed=0))
    bad = copy.deepcopy(doc)
    bad["model"]["states"][1]["name"] = "a"
    message = r"RecurrentModel 'two', state #1 'a': expected a name unique among the states"
    with pytest.raises(RshopConfigError, match=message):
        serialization.from_document(bad)
    x = Input((2,), name="x")
    same = [Input((2,), name="a"), Input((2,), name="a")]
    with pytest.raises(RshopConfigError, match=message):
        RecurrentModel(x, F.add(x, same[0]), same, [F.add(x, same[0]), same[1]], name="two")
