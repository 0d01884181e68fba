"""The elementwise math ops (clip, pow, sin, cos, erf) and the Keras activations (gelu exact and tanh,
silu/swish, leaky_relu, selu, mish, hard_silu, log_softmax, relu6) on every engine.

Two models keep the compiled layers few: ``mixed`` applies every one of them to a slice of one recurrent
pre-activation (forward vs the numpy float64 engine, gradients vs float64 central differences); ``kinks``
applies them to ``x + b`` with ``b`` a zero bias, so the inputs land exactly on the kinks (0, 6, the clip
bounds). There the gradient w.r.t. ``b`` is compared with the derivative written out in numpy below, with
the convention rshop documents (docs/ir.md), and the forward with each framework's own activation.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from rshop_core import Input, RecurrentModel
from rshop_core import functional as F
from rshop_core.layers import Dense, Layer

from .conftest import as_tuple, assert_close, central_differences, harness, reference, run
from .tolerances import FORWARD_ATOL, GRAD_RTOL

SELU_ALPHA, SELU_SCALE = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946


def _mixed_step(z):
    p = F.split(z, 16)
    return [
        F.sin(p[0]),
        F.cos(p[1]),
        F.erf(p[2]),
        F.clip(p[3], -0.3, 0.4),
        F.pow(F.square(p[4]) + 0.5, 1.5),
        F.pow(p[5], 3.0),  # a negative base with an integer exponent: real
        F.pow(F.sigmoid(p[6]) + 0.5, F.tanh(p[7])),  # a tensor exponent
        F.gelu(p[8]),
        F.gelu(p[9], approximate=True),
        F.swish(p[10]),
        F.leaky_relu(p[11], negative_slope=0.01),
        F.selu(p[12]) + F.mish(p[13]),
        F.relu6(p[14] * 4.0) + F.hard_silu(p[15] * 3.0),
    ]


def mixed_model():
    x, h = Input((2,), name="x"), Input((4,), name="h")
    z = Dense(16, name="pre")(F.concat([x, h]))
    parts = _mixed_step(z)
    y = F.concat([*parts, F.log_softmax(F.slice(z, 0, 3))])
    h_new = F.tanh(Dense(4, name="mix")(y))
    return RecurrentModel(
        input=x, initial_states=[h], output=y, final_states=[h_new], return_sequences=True, return_states=True, seed=3
    )


class Bias(Layer):
    """``x + b``, ``b`` zeros: the activations see ``x`` itself, and d loss / d b is their derivative."""

    def __call__(self, x):
        return x + self.add_weight("b", (x.shape[-1],), "zeros")


# the kinks model: name -> (rshop function, inputs of its 3-wide slice, derivative in numpy)
KINK_ACTS = {
    "leaky_relu": (F.leaky_relu, [0.0, -1.5, 2.0], lambda x: np.where(x > 0, 1.0, 0.2)),
    "leaky_relu_0.01": (lambda v: F.leaky_relu(v, 0.01), [0.0, -0.25, 0.5], lambda x: np.where(x > 0, 1.0, 0.01)),
    "selu": (
        F.selu,
        [0.0, -0.7, 1.3],
        lambda x: np.where(x > 0, SELU_SCALE, SELU_SCALE * SELU_ALPHA * np.exp(np.minimum(x, 0))),
    ),
    "relu6": (F.relu6, [0.0, 6.0, 3.0], lambda x: np.where((x > 0) & (x < 6), 1.0, 0.0)),
    "clip": (lambda v: F.clip(v, -1.0, 2.0), [-1.0, 2.0, 0.5], lambda x: np.where((x >= -1) & (x <= 2), 1.0, 0.0)),
    "gelu": (
        F.gelu,
        [0.0, -1.2, 0.8],
        lambda x: (
            0.5 * (1 + np.vectorize(math.erf)(x / math.sqrt(2))) + x * np.exp(-x * x / 2) / math.sqrt(2 * math.pi)
        ),
    ),
    "gelu_tanh": (lambda v: F.gelu(v, approximate=True), [0.0, -1.2, 0.8], None),  # derivative: see _gelu_tanh_d
    "silu": (F.silu, [0.0, -2.0, 1.5], lambda x: _sig(x) * (1 + x * (1 - _sig(x)))),
    "mish": (F.mish, [0.0, -1.0, 2.5], None),  # derivative: see _mish_d
    "hard_silu": (F.hard_silu, [0.0, -1.0, 2.5], lambda x: np.where(np.abs(x) < 3, (2 * x + 3) / 6, (x >= 3) * 1.0)),
    "erf": (F.erf, [0.0, -0.6, 1.1], lambda x: 2 / math.sqrt(math.pi) * np.exp(-x * x)),
    "sin": (F.sin, [0.0, -0.6, 1.1], np.cos),
    "cos": (F.cos, [0.0, -0.6, 1.1], lambda x: -np.sin(x)),
    "pow3": (lambda v: F.pow(v, 3.0), [0.0, -0.6, 1.1], lambda x: 3 * x * x),
}
NAMES = list(KINK_ACTS)


def _sig(x):
    return 1 / (1 + np.exp(-x))


def _gelu_tanh_d(x):
    c, k = math.sqrt(2 / math.pi), 0.044715
    t = np.tanh(c * (x + k * x**3))
    return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * c * (1 + 3 * k * x * x)


def _mish_d(x):
    sp = np.log1p(np.exp(x))
    t = np.tanh(sp)
    return t + x * (1 - t * t) * _sig(x)


DERIVATIVES = {name: {"gelu_tanh": _gelu_tanh_d, "mish": _mish_d}.get(name, d) for name, (_, _, d) in KINK_ACTS.items()}


def kinks_model():
    x, h = Input((3 * len(NAMES),), name="x"), Input((1,), name="h")
    z = Bias(name="bias")(x)
    pieces = F.split(z, len(NAMES))
    y = F.concat([KINK_ACTS[n][0](p) for n, p in zip(NAMES, pieces)])
    return RecurrentModel(input=x, initial_states=[h], output=y, final_states=[h + 1.0], return_sequences=True, seed=0)


def kink_inputs():
    """(2, 3, 3·n): the listed points at t = 0 and 2 of every sequence, small random values at t = 1."""
    x = np.random.default_rng(5).uniform(-0.9, 0.9, (2, 3, 3 * len(NAMES)))
    points = np.concatenate([KINK_ACTS[n][1] for n in NAMES])
    x[:, 0] = points
    x[:, 2] = points
    return x


@pytest.fixture(scope="module")
def models():
    return {"mixed": mixed_model(), "kinks": kinks_model()}


@pytest.fixture(scope="module")
def layers(models):
    cache: dict = {}

    def get(engine, which):
        key = (engine, which)
        if key not in cache:
            cache[key] = models[which].lower(engine)
        return cache[key]

    return get


def mixed_inputs():
    return np.random.default_rng(11).standard_normal((2, 4, 2))


def test_mixed_forward_matches_float64_reference(engine, models, layers):
    m, x = models["mixed"], mixed_inputs()
    want = reference(m, x)
    got = run(m, engine, x, layer=layers(engine, "mixed"))
    assert np.all(np.isfinite(want[0]))
    assert_close(got, want, FORWARD_ATOL["float32"], f"{engine}/activations_math")


def test_mixed_gradients_match_finite_differences(trainable_engine, models, layers):
    m, x = models["mixed"], mixed_inputs()
    ref = m.lower("numpy", "float64")
    y = as_tuple(ref(x))[0]
    w_out = np.random.default_rng(7).standard_normal(y.shape)
    want = central_differences(ref.params, lambda: float(np.sum(as_tuple(ref(x))[0] * w_out)))
    h = harness(trainable_engine)
    got = h.loss_grads(layers(trainable_engine, "mixed"), h.to_native(x, "float32"), w_out.astype(np.float32))
    assert sorted(got) == sorted(want)
    scale = max(1.0, max(float(np.max(np.abs(g))) for g in want.values()))
    for name in want:
        err = float(np.max(np.abs(got[name].astype(np.float64) - want[name])))
        assert err <= GRAD_RTOL["float32"] * scale, f"{trainable_engine}: d/d {name} off by {err:.3g}"


def _by_name(a):
    """The last axis of ``a`` cut into the 3-wide slices of the kinks model, by activation name."""
    return dict(zip(NAMES, np.split(a, len(NAMES), axis=-1)))


def test_kinks_forward_matches_reference(engine, models, layers):
    m, x = models["kinks"], kink_inputs()
    want = reference(m, x)
    got = run(m, engine, x, layer=layers(engine, "kinks"))
    assert_close(got, want, FORWARD_ATOL["float32"], f"{engine}/kinks")
    xs = _by_name(x)
    ys = _by_name(want[0])
    # exact values where the kinks are (the reference computes these without rounding)
    assert np.array_equal(ys["relu6"][:, 0], np.array([[0.0, 6.0, 3.0]] * 2))
    assert np.array_equal(ys["clip"][:, 0], np.array([[-1.0, 2.0, 0.5]] * 2))
    assert np.allclose(ys["leaky_relu"][:, 0], [[0.0, -0.3, 2.0]] * 2, rtol=0, atol=1e-15)
    assert np.allclose(ys["hard_silu"], xs["hard_silu"] * np.clip(xs["hard_silu"] + 3, 0, 6) / 6, rtol=0, atol=1e-15)


def test_kink_gradients_follow_the_documented_convention(trainable_engine, models, layers):
    """d/db of sum(w · act(x + b)) at b = 0 is sum over batch and time of w · act'(x): with x on the kinks,
    this is where engines' own conventions could differ; rshop makes them all take the one in docs/ir.md."""
    x = kink_inputs()
    w_out = np.random.default_rng(8).uniform(0.5, 1.5, x.shape)
    h = harness(trainable_engine)
    got = h.loss_grads(layers(trainable_engine, "kinks"), h.to_native(x, "float32"), w_out.astype(np.float32))
    gb = _by_name(got["bias/b"])
    xs, ws = _by_name(x), _by_name(w_out)
    for name in NAMES:
        want = np.sum(DERIVATIVES[name](xs[name]) * ws[name], axis=(0, 1))
        np.testing.assert_allclose(gb[name], want, rtol=2e-5, atol=2e-5, err_msg=f"{trainable_engine}: {name}")


def _native_activations(engine):
    """The framework's own function for each activation it has, as ``f(numpy float32) -> numpy``."""
    if engine == "torch":
        import torch
        import torch.nn.functional as tf_

        t = lambda f: lambda v: f(torch.from_numpy(v)).numpy()
        return {
            "leaky_relu": t(lambda v: tf_.leaky_relu(v, 0.2)),
            "leaky_relu_0.01": t(tf_.leaky_relu),
            "selu": t(tf_.selu),
            "relu6": t(tf_.relu6),
            "clip": t(lambda v: torch.clamp(v, -1.0, 2.0)),
            "gelu": t(tf_.gelu),
            "gelu_tanh": t(lambda v: tf_.gelu(v, approximate="tanh")),
            "silu": t(tf_.silu),
            "mish": t(tf_.mish),
            "hard_silu": t(tf_.hardswish),
            "erf": t(torch.erf),
        }
    if engine == "jax":
        import jax
        import jax.numpy as jnp

        j = lambda f: lambda v: np.asarray(f(jnp.asarray(v)))
        return {
            "leaky_relu": j(lambda v: jax.nn.leaky_relu(v, 0.2)),
            "selu": j(jax.nn.selu),
            "relu6": j(jax.nn.relu6),
            "clip": j(lambda v: jnp.clip(v, -1.0, 2.0)),
            "gelu": j(lambda v: jax.nn.gelu(v, approximate=False)),
            "gelu_tanh": j(jax.nn.gelu),
            "silu": j(jax.nn.silu),
            "mish": j(jax.nn.mish),
            "hard_silu": j(jax.nn.hard_swish),
            "erf": j(jax.lax.erf),
        }
    if engine == "tensorflow":  # Keras 3's activations, whose names and defaults rshop follows
        import keras

        k = lambda f: lambda v: np.asarray(keras.ops.convert_to_numpy(f(v)))
        a = keras.activations
        return {
            "leaky_relu": k(a.leaky_relu),  # Keras' default slope 0.2
            "selu": k(a.selu),
            "relu6": k(a.relu6),
            "gelu": k(a.gelu),  # Keras' default: exact
            "gelu_tanh": k(lambda v: a.gelu(v, approximate=True)),
            "silu": k(a.silu),
            "mish": k(a.mish),
            "hard_silu": k(a.hard_silu),
        }
    return {}


def test_kinks_forward_matches_each_framework_own_activation(engine, models, layers):
    natives = _native_activations(engine)
    if not natives:
        pytest.skip(f"{engine} is the reference itself: the other engines compare with their framework's functions")
    x = kink_inputs().astype(np.float32)
    got = _by_name(run(models["kinks"], engine, x, layer=layers(engine, "kinks"))[0])
    xs = _by_name(x)
    for name, f in natives.items():
        np.testing.assert_allclose(got[name], f(xs[name]), rtol=1e-6, atol=1e-6, err_msg=f"{engine}: {name}")
