"""Issue #9, call-time trust: wrong calls raise the same RshopError everywhere, nothing is clamped
or ignored silently, and gradients at ties follow one convention on every engine."""

from __future__ import annotations

import numpy as np
import pytest

from rshop_core import functional as F
from rshop_core.cells import Cell
from rshop_core.errors import RshopConfigError, RshopDTypeError, RshopEngineError, RshopError, RshopShapeError
from rshop_core.initializers import Constant

from .cases import CASES
from .composition_cases import readout_model
from .conftest import harness, native, run

rng = np.random.default_rng(9)
X = rng.standard_normal((2, 3, 4))  # the "lstm" case: (batch 2, T 3, 4 features)
_MODELS: dict = {}


def model(name):
    if name not in _MODELS:
        _MODELS[name] = readout_model() if name == "readout" else CASES[name].build()
    return _MODELS[name]


BAD_CALLS = {
    # name: (model, x, kwargs, error class, fragment of the message)
    "ground_truth_at_inference": (
        "readout",
        rng.standard_normal((2, 6, 3)),
        {"ground_truth": rng.standard_normal((2, 6, 2)), "training": False},
        RshopConfigError,
        "argument ground_truth: expected none for a call with training=False (teacher forcing "
        "happens only in training calls), received one. Pass training=True to teacher-force, or drop ground_truth.",
    ),
    "empty_constant": (
        "attention",
        X,
        {"constants": [np.zeros((2, 0, 8))]},
        RshopShapeError,
        "constant #0: expected every per-example dimension to be at least 1, received shape "
        "(2, 0, 8) (dimension 1 is 0)",
    ),
    "mask_dtype": (
        "lstm",
        X,
        {"mask": np.ones((2, 3), np.int32)},
        RshopDTypeError,
        "argument mask: expected dtype bool, received int32",
    ),
    "mask_shape": (
        "lstm",
        X,
        {"mask": np.ones((2, 4), bool)},
        RshopShapeError,
        "argument mask: expected a bool array of shape (2, 3), received shape (2, 4)",
    ),
    "lengths_dtype": (
        "lstm",
        X,
        {"sequence_lengths": np.ones(2, np.float32)},
        RshopDTypeError,
        "argument sequence_lengths: expected dtype int32 or int64, received float32",
    ),
    "lengths_shape": (
        "lstm",
        X,
        {"sequence_lengths": np.ones(3, np.int32)},
        RshopShapeError,
        "argument sequence_lengths: expected an array of shape (2,), received shape (3,)",
    ),
    "lengths_too_long": (
        "lstm",
        X,
        {"sequence_lengths": np.array([3, 4], np.int32)},
        RshopShapeError,
        "argument sequence_lengths: expected every length in [0, 3] (the time steps of x), "
        "received 4 at batch index 1. Lengths are never clamped",
    ),
    "lengths_negative": (
        "lstm",
        X,
        {"sequence_lengths": np.array([-1, 9], np.int32)},
        RshopShapeError,
        "expected every length in [0, 3] (the time steps of x), received -1 at batch index 0",
    ),
}


def _native_kwargs(h, kwargs):
    """Floats in float32, masks and lengths in their own dtype (never converted by the harness)."""
    out = {}
    for k, v in kwargs.items():
        if isinstance(v, bool):  # training=
            out[k] = v
        elif isinstance(v, list):
            out[k] = [native(h, a, "float32") for a in v]
        else:
            out[k] = h.to_native(v, v.dtype.name if v.dtype.kind != "f" or v.dtype == np.float32 else "float32")
    return out


def _call(engine, name):
    which, x, kwargs, _, _ = BAD_CALLS[name]
    h = harness(engine)
    with pytest.raises(RshopError) as info:
        model(which).lower(engine)(native(h, x, "float32"), **_native_kwargs(h, kwargs))
    return info.value


@pytest.mark.parametrize("name", sorted(BAD_CALLS))
def test_bad_call_same_error_everywhere(engine, name):
    cls, fragment = BAD_CALLS[name][3:]
    err = _call(engine, name)
    assert type(err) is cls, f"{engine}: {type(err).__name__}: {err}"
    assert fragment in str(err), str(err)
    assert str(err) == str(_call("numpy", name)), "message differs from the numpy engine's"


def test_ground_truth_still_teacher_forces_in_training(engine):
    """The refusal is only for inference: a training call with targets still differs from free running."""
    x, gt = rng.standard_normal((2, 6, 3)), rng.standard_normal((2, 6, 2))
    forced = run(model("readout"), engine, x, ground_truth=gt, training=True)[0]
    want = run(model("readout"), "numpy", x, "float64", ground_truth=gt, training=True)[0]
    free = run(model("readout"), "numpy", x, "float64")[0]
    assert np.abs(forced - want).max() < 1e-4
    assert np.abs(want - free).max() > 1e-3


def test_lengths_at_the_bounds_are_accepted(engine):
    """0 and T are valid lengths: the same numbers as the equivalent mask."""
    lengths = np.array([0, 3], np.int32)
    got = run(model("lstm"), engine, X, sequence_lengths=lengths)[0]
    want = run(model("lstm"), "numpy", X, "float64", mask=np.arange(3)[None, :] < lengths[:, None])[0]
    assert np.abs(got - want).max() < 1e-5


def test_masked_numpy_array_refused(engine):
    """A numpy.ma.MaskedArray is refused on every engine (numpy would drop its mask silently)."""
    xm = np.ma.masked_array(X.astype(np.float32), mask=np.zeros(X.shape, bool))
    with pytest.raises(RshopEngineError) as info:
        model("lstm").lower(engine)(xm)
    assert "argument x: expected a plain array, received a numpy.ma.MaskedArray (its mask would be dropped" in str(
        info.value
    )


def test_traced_lengths_jax_jit_poisons_bad_rows():
    """Under jax.jit nothing can raise: out-of-range rows are NaN, valid rows are exact."""
    pytest.importorskip("jax")
    import jax
    import jax.numpy as jnp

    layer = CASES["lstm"].build(return_sequences=True, return_states=True).lower("jax")
    lengths = np.array([2, 5], np.int32)
    fn = jax.jit(lambda p, x, n: layer.apply(p, x, sequence_lengths=n))
    got = [np.asarray(v) for v in fn(layer.params, jnp.asarray(X, jnp.float32), jnp.asarray(lengths))]
    want = run(layer.model, "numpy", X, "float64", sequence_lengths=np.array([2, 3], np.int32))
    for g, w in zip(got, want):
        assert np.isnan(g[1]).all(), "a length past T must poison its row"
        assert np.abs(g[0] - w[0]).max() < 1e-5
    ok = fn(layer.params, jnp.asarray(X, jnp.float32), jnp.asarray(np.array([2, 3], np.int32)))
    assert not any(np.isnan(np.asarray(v)).any() for v in ok)


def test_traced_lengths_tf_function_assert():
    """Inside a tf.function the eager message comes from a runtime assertion."""
    tf = pytest.importorskip("tensorflow")
    layer = model("lstm").lower("tensorflow")
    fn = tf.function(lambda x, n: layer(x, sequence_lengths=n))
    x = tf.constant(X, tf.float32)
    with pytest.raises(tf.errors.InvalidArgumentError) as info:
        fn(x, tf.constant([3, 4], tf.int32))
    assert (
        "argument sequence_lengths: expected every length in [0, 3] (the time steps of x), received 4 at batch index 1"
    ) in str(info.value)
    got = fn(x, tf.constant([1, 3], tf.int32)).numpy()
    want = run(model("lstm"), "numpy", X, "float64", sequence_lengths=np.array([1, 3], np.int32))[0]
    assert np.abs(got - want).max() < 1e-5


# -- gradients at ties: 0.5 / 0.5 for maximum and minimum, 1/k over k tied maxima of a reduction (jax's rule)


class TieCell(Cell):
    """y = [maximum(a, b), minimum(a, b), max over a's columns], a = x k1 and b = x k2 with k1 == k2, so
    every entry is a tie (x has one feature: each entry is a single product, bitwise equal)."""

    state_names = ("h",)

    def state_shapes(self):
        return [(1,)]

    def step(self, x, states):
        k1 = self.add_weight("k1", (1, 3), Constant(0.5), x.dtype)
        k2 = self.add_weight("k2", (1, 3), Constant(0.5), x.dtype)
        a, b = F.matmul(x, k1), F.matmul(x, k2)
        y = F.concat([F.maximum(a, b), F.minimum(a, b), F.max(a, axes=[-1], keepdims=True)])
        return y, states


def test_gradient_at_ties_split_equally(trainable_engine):
    layer = TieCell(1, input_dim=1, name="tie").get_layer(return_sequences=True, seed=0).lower(trainable_engine)
    h = harness(trainable_engine)
    x = rng.standard_normal((2, 3, 1))
    w = rng.standard_normal((2, 3, 7))
    got = h.loss_grads(layer, h.to_native(x, "float32"), w.astype(np.float32))
    xs = x[..., 0]  # d a[:, :, j] / d k1[0, j] = x
    want_k1 = [np.sum(xs * (0.5 * w[..., j] + 0.5 * w[..., 3 + j] + w[..., 6] / 3)) for j in range(3)]
    want_k2 = [np.sum(xs * (0.5 * w[..., j] + 0.5 * w[..., 3 + j])) for j in range(3)]
    np.testing.assert_allclose(got["tie/k1"][0], want_k1, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got["tie/k2"][0], want_k2, rtol=1e-5, atol=1e-6)


def test_maximum_forward_value_unchanged(engine):
    """The tie-splitting maximum/minimum compute exactly max(a, b) / min(a, b)."""
    layer = TieCell(1, input_dim=1, name="tie").get_layer(return_sequences=True, seed=0)
    x = rng.standard_normal((2, 3, 1))
    got = run(layer, engine, x)[0]
    a = x * 0.5
    want = np.concatenate([np.repeat(a, 3, -1)] * 2 + [a], -1)
    np.testing.assert_allclose(got, want, rtol=1e-6)
