"""``layer.apply_constraints()`` on every engine agrees with the numpy float64 reference: in place and pure,
on cells' weights, Dense's and parameters a user declared with ``add_weight(constraint=...)``."""

from __future__ import annotations

import numpy as np
import pytest

from rshop_core import Input, RecurrentModel, constraints
from rshop_core import functional as F
from rshop_core.cells import LSTMCell
from rshop_core.errors import RshopConfigError
from rshop_core.layers import Dense, Layer

from .conftest import assert_close, harness, only_engine, run


class Mix(Layer):
    """A user layer with a (3, 4) parameter held to a max norm over both axes."""

    def __call__(self, x):
        w = self.add_weight("w", (3, 4), "glorot_uniform", constraint=constraints.max_norm(1.0, axis=[0, 1]))
        return F.matmul(x, w)


@pytest.fixture(scope="module")
def model():
    x, h, c = Input((3,), name="x"), Input((4,), name="h"), Input((4,), name="c")
    cell = LSTMCell(
        4,
        kernel_constraint=constraints.max_norm(1.5),
        recurrent_constraint=constraints.unit_norm(axis=1),
        bias_constraint="non_neg",
    )
    y, (h2, c2) = cell(x, [h, c])
    dense = Dense(4, kernel_constraint=constraints.min_max_norm(0.5, 1.0, rate=0.7), bias_constraint="non_neg")
    out = F.add(dense(y), Mix()(x))
    m = RecurrentModel(input=x, initial_states=[h, c], output=out, final_states=[h2, c2], return_sequences=True, seed=4)
    rng = np.random.default_rng(9)  # large weights, half negative: every constraint moves something
    m.set_weights({k: (2.0 * rng.standard_normal(v.shape)).astype(np.float32) for k, v in m.get_weights().items()})
    return m


@pytest.fixture(scope="module")
def projected(model):
    """The numpy float64 reference's projected weights."""
    ref = model.lower("numpy", "float64")
    ref.apply_constraints()
    return ref.get_weights()


X = np.random.default_rng(2).standard_normal((2, 5, 3)).astype(np.float32)


def test_every_parameter_is_constrained_as_declared(model):
    assert sorted(model.lower("numpy").constraints) == [
        "dense/bias",
        "dense/kernel",
        "lstm_cell/bias",
        "lstm_cell/kernel",
        "lstm_cell/recurrent_kernel",
        "mix/w",
    ]


def test_reference_equals_the_constraint_objects(model, projected):
    w = {k: v.astype(np.float64) for k, v in model.get_weights().items()}
    for k, spec in model.param_specs.items():
        np.testing.assert_allclose(projected[k], constraints.from_json(spec.constraint, k)(w[k]), rtol=1e-12)
    assert np.linalg.norm(projected["mix/w"]) <= 1.0 + 1e-12
    assert projected["lstm_cell/bias"].min() == 0.0


def test_apply_constraints_in_place_agrees_with_numpy(engine, model, projected):
    layer = model.lower(engine)
    before = layer.get_weights()
    assert layer.apply_constraints() is None
    got = layer.get_weights()
    for k, want in projected.items():
        assert got[k].dtype == np.float32
        np.testing.assert_allclose(got[k], want, rtol=1e-5, atol=1e-6, err_msg=f"{engine} {k}")
        assert not np.allclose(before[k], got[k]), f"{k}: the constraint should have moved these weights"
    # the layer runs the projected weights
    model_after = model.lower("numpy", "float64")
    model_after.set_weights(projected)
    assert_close(run(model, engine, X, layer=layer), run(model, "numpy", X, "float64", layer=model_after), 1e-4, engine)
    # projecting again changes (almost) nothing: the weights are in the sets (min_max_norm with rate 0.7
    # moves 70% of the way each time: not idempotent, as in Keras)
    layer.apply_constraints()
    for k, v in layer.get_weights().items():
        if k != "dense/kernel":
            np.testing.assert_allclose(v, got[k], rtol=1e-5, atol=1e-6)


def test_pure_form_returns_new_params_and_leaves_the_layer(engine, model, projected):
    h = harness(engine)
    layer = model.lower(engine)
    before = layer.get_weights()
    params = {k: h.to_native(v, "float32") for k, v in before.items()}
    out = layer.apply_constraints(params)
    assert sorted(out) == sorted(params)
    for k, want in projected.items():
        np.testing.assert_allclose(h.to_numpy(out[k]), want, rtol=1e-5, atol=1e-6, err_msg=f"{engine} {k}")
        np.testing.assert_array_equal(h.to_numpy(params[k]), before[k])  # the input is not changed
    for k, v in layer.get_weights().items():
        np.testing.assert_array_equal(v, before[k])  # nor the layer


def test_a_partial_params_dict_is_refused(engine, model):
    h = harness(engine)
    layer = model.lower(engine)
    with pytest.raises(RshopConfigError) as info:
        layer.apply_constraints({"mix/w": h.to_native(np.zeros((3, 4)), "float32")})
    assert str(info.value) == (
        f"{engine} layer of RecurrentModel 'recurrent_model', apply_constraints: expected the constrained "
        "parameters ['dense/bias', 'dense/kernel', 'lstm_cell/bias', 'lstm_cell/kernel', "
        "'lstm_cell/recurrent_kernel', 'mix/w'], received a dict missing ['dense/bias', 'dense/kernel', "
        "'lstm_cell/bias', 'lstm_cell/kernel', 'lstm_cell/recurrent_kernel']. Pass the whole parameter dict "
        "(layer.params on jax)."
    )


def test_a_layer_without_constraints_is_unchanged(engine):
    m = LSTMCell(3, input_dim=2).get_layer(seed=0)
    layer = m.lower(engine)
    layer.apply_constraints()
    for k, v in layer.get_weights().items():
        np.testing.assert_array_equal(v, m.get_weights()[k])


def test_jax_pure_form_under_jit(request, model, projected):
    only_engine(request, "jax", "apply_constraints under jax.jit")
    import jax

    layer = model.lower("jax")
    out = jax.jit(layer.apply_constraints)(layer.params)
    for k, want in projected.items():
        np.testing.assert_allclose(np.asarray(out[k]), want, rtol=1e-5, atol=1e-6)


def test_torch_optimizer_step_then_constraints(request, model):
    only_engine(request, "torch", "torch parameters after apply_constraints")
    import torch

    layer = model.lower("torch")
    params = dict(layer.named_parameters())
    opt = torch.optim.SGD(layer.parameters(), lr=0.5)
    x = torch.from_numpy(X)
    for _ in range(2):
        opt.zero_grad()
        layer(x).pow(2).mean().backward()
        opt.step()
        layer.apply_constraints()
    # the same leaf Parameters the optimizer holds, still trainable, inside the constraint sets
    assert all(p is params[k] and p.is_leaf and p.requires_grad for k, p in layer.named_parameters())
    w = layer.get_weights()
    assert np.linalg.norm(w["lstm_cell/kernel"], axis=0).max() <= 1.5 + 1e-5
    assert w["dense/bias"].min() >= 0.0 and w["lstm_cell/bias"].min() >= 0.0
    np.testing.assert_allclose(np.linalg.norm(w["lstm_cell/recurrent_kernel"], axis=1), 1.0, rtol=1e-5)


def test_tensorflow_variables_are_assigned(request, model):
    only_engine(request, "tensorflow", "tf.Variables after apply_constraints")
    layer = model.lower("tensorflow")
    variables = dict(layer.variables_by_name)
    layer.apply_constraints()
    assert all(v is variables[k] for k, v in layer.variables_by_name.items())
    assert float(layer.variables_by_name["dense/bias"].numpy().min()) >= 0.0
