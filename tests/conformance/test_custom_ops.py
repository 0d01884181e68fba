"""Custom ops (issue #12 item 9) on every engine: each registered op against its numpy reference
(values and gradients vs finite differences, through ``rshop_backends.testing.check_custom_op``),
and a cell that uses them against the numpy float64 reference, forward and gradients.

The ops below are registered when this module is imported, so the registry-driven test covers
them with any op another module (or a plugin) registered before collection."""

from __future__ import annotations

import numpy as np
import pytest

import rshop_core
from rshop_core import Input, RecurrentModel, custom_ops
from rshop_core import functional as F
from rshop_core.errors import RshopNotImplementedError
from rshop_core.layers import Dense
from rshop_core.types import TensorType

from .conftest import as_tuple, assert_close, harness, reference, run
from .test_gradients import finite_differences
from .tolerances import FORWARD_ATOL, GRAD_RTOL


# --- rshoptest.swish: engine implementations, one float attribute ------------------------------------
def _swish_ref(x: np.ndarray, beta: float = 1.0) -> np.ndarray:
    return x * (0.5 * (1.0 + np.tanh(0.5 * beta * x)))


def _swish_jax(x, beta=1.0):
    import jax

    return x * jax.nn.sigmoid(beta * x)


def _swish_torch(x, beta=1.0):
    import torch

    return x * torch.sigmoid(beta * x)


def _swish_tf(x, beta=1.0):
    import tensorflow as tf

    return x * tf.sigmoid(beta * x)


SWISH = rshop_core.register_op(
    "rshoptest.swish",
    reference=_swish_ref,
    infer=lambda types, attrs: types[0],
    jax=_swish_jax,
    torch=_swish_torch,
    tensorflow=_swish_tf,
    example_inputs=[(2, 3)],
    example_attrs={"beta": 1.7},
)


# --- rshoptest.attend: two inputs of different ranks, a reduced output ---------------------------------
def _attend_infer(types, attrs):
    seq, q = types
    if seq.rank != 2 or q.rank != 1 or seq.shape[1] != q.shape[0]:
        raise rshop_core.RshopShapeError(
            f"expected a sequence (T, d) and a query (d,), received {seq.describe()} and {q.describe()}"
        )
    return TensorType(q.shape, q.dtype, True)


def _attend_ref(seq, q):
    s = np.einsum("btd,bd->bt", seq, q)
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    return np.einsum("bt,btd->bd", e / e.sum(axis=-1, keepdims=True), seq)


def _attend_jax(seq, q):
    import jax
    import jax.numpy as jnp

    return jnp.einsum("bt,btd->bd", jax.nn.softmax(jnp.einsum("btd,bd->bt", seq, q), axis=-1), seq)


def _attend_torch(seq, q):
    import torch

    return torch.einsum("bt,btd->bd", torch.softmax(torch.einsum("btd,bd->bt", seq, q), -1), seq)


def _attend_tf(seq, q):
    import tensorflow as tf

    return tf.einsum("bt,btd->bd", tf.nn.softmax(tf.einsum("btd,bd->bt", seq, q), axis=-1), seq)


ATTEND = rshop_core.register_op(
    "rshoptest.attend",
    reference=_attend_ref,
    infer=_attend_infer,
    jax=_attend_jax,
    torch=_attend_torch,
    tensorflow=_attend_tf,
    example_inputs=[(3, 2), (2,)],
)


# --- rshoptest.swiglu: a composition of built-in ops (runs everywhere, stored expanded) ---------------
def _swiglu_ref(x):
    a, b = np.split(x, 2, axis=-1)
    return a * b * (0.5 * (1.0 + np.tanh(0.5 * b)))


def _swiglu(x):
    a, b = F.split(x, 2)
    return a * (b * F.sigmoid(b))


SWIGLU = rshop_core.register_op(
    "rshoptest.swiglu",
    reference=_swiglu_ref,
    composition=_swiglu,
    infer=lambda types, attrs: TensorType(types[0].shape[:-1] + (types[0].shape[-1] // 2,), types[0].dtype),
    example_inputs=[(4,)],
)


# --- rshoptest.frozen_tanh: differentiable=False (gradients stop at its output) ----------------------
def _tanh_jax(x):
    import jax.numpy as jnp

    return jnp.tanh(x)


def _tanh_torch(x):
    import torch

    return torch.tanh(x)


def _tanh_tf(x):
    import tensorflow as tf

    return tf.tanh(x)


FROZEN = rshop_core.register_op(
    "rshoptest.frozen_tanh",
    reference=np.tanh,
    infer=lambda types, attrs: types[0],
    jax=_tanh_jax,
    torch=_tanh_torch,
    tensorflow=_tanh_tf,
    differentiable=False,
    example_inputs=[(3,)],
)


@pytest.mark.parametrize("name", sorted(custom_ops.registered()))
def test_registered_op_matches_its_reference(engine, name):
    op = custom_ops.registered()[name]
    if op.composition is None and engine not in op.implementations:
        pytest.skip(f"{name} has no {engine} implementation (the refusal is tested in tests/unit)")
    (report,) = rshop_backends_check(name, engine)
    assert report.engine == engine
    assert report.forward_error <= 1e-12
    if engine == "numpy":
        assert report.gradient_error is None  # inference-only engine
    else:
        assert report.gradient_error is not None and report.gradient_error <= 1e-5


def rshop_backends_check(name, engine):
    from rshop_backends.testing import check_custom_op

    return check_custom_op(name, [engine])


def test_check_custom_op_catches_a_wrong_implementation(engine):
    """The check can fail: an implementation off by a factor is reported with the op and the engine."""
    from rshop_backends.testing import check_custom_op
    from rshop_core.errors import RshopNumericsError

    impls = {"jax": _swish_jax, "torch": _swish_torch, "tensorflow": _swish_tf}

    def wrong(*a, **k):
        return impls[engine](*a, **k) * 1.001 if engine != "numpy" else _swish_ref(*a, **k) * 1.001

    kw = {engine: wrong} if engine != "numpy" else {}
    ref = _swish_ref if engine != "numpy" else wrong
    rshop_core.register_op("rshoptest_bad.swish", reference=ref, infer=lambda t, a: t[0], **kw)
    try:
        if engine == "numpy":  # the reference itself is the numpy engine: the check compares like with like
            assert check_custom_op("rshoptest_bad.swish", ["numpy"], inputs=[(3,)])[0].forward_error == 0.0
        else:
            with pytest.raises(RshopNumericsError) as e:
                check_custom_op("rshoptest_bad.swish", [engine], inputs=[(3,)])
            assert f"check_custom_op('rshoptest_bad.swish'), engine {engine!r}" in str(e.value)
            assert "of the numpy reference" in str(e.value)
    finally:
        custom_ops.unregister("rshoptest_bad.swish")


def _model():
    """A cell whose recurrence runs through swish and attend (custom nodes) and swiglu (built-ins)."""
    x, h, enc = Input((3,), name="x"), Input((4,), name="h"), Input((5, 4), name="enc")
    pre = Dense(8, name="pre")(x) + Dense(8, use_bias=False, name="rec")(h)
    g = SWIGLU(pre)  # (4,)
    ctx = ATTEND(enc, g, name="ctx")
    new = SWISH(g + ctx, beta=1.3, name="act")
    out = FROZEN(new, name="frozen") + new
    return RecurrentModel(
        input=x, initial_states=[h], constants=[enc], output=out, final_states=[new], seed=3, return_sequences=True
    )


_MODELS: dict = {}


def model():
    if not _MODELS:
        _MODELS["m"] = _model()
    return _MODELS["m"]


def _inputs():
    rng = np.random.default_rng(5)
    return rng.standard_normal((2, 4, 3)), [rng.standard_normal((2, 5, 4))]


def test_cell_with_custom_ops_matches_reference(engine):
    m = model()
    assert [n.attrs["op"] for n in m.graph.nodes if n.op == "custom"] == [
        "rshoptest.attend",
        "rshoptest.swish",
        "rshoptest.frozen_tanh",
    ]  # swiglu was inlined
    x, consts = _inputs()
    want = reference(m, x, constants=consts)
    got = run(m, engine, x, constants=consts)
    assert_close(got, want, FORWARD_ATOL["float32"], f"{engine}: custom-op cell")


def test_cell_with_custom_ops_gradients(trainable_engine):
    m = model()
    x, consts = _inputs()
    y = as_tuple(m.lower("numpy", "float64")(x, constants=consts))[0]
    w = np.random.default_rng(8).standard_normal(y.shape)
    # the numpy engine runs frozen_tanh for real, so its finite differences see it; the engines stop the
    # gradient there: compare with the finite differences of the same model without that term
    m_free = _model_without_frozen()
    want = finite_differences(m_free, x, w, consts)
    h = harness(trainable_engine)
    got = h.loss_grads(
        m.lower(trainable_engine),
        h.to_native(x, "float32"),
        w.astype(np.float32),
        constants=[h.to_native(c, "float32") for c in consts],
    )
    assert sorted(got) == sorted(want)
    scale = max(1.0, max(float(np.max(np.abs(g))) for g in want.values()))
    for k in want:
        err = float(np.max(np.abs(got[k].astype(np.float64) - want[k])))
        assert err <= GRAD_RTOL["float32"] * scale, f"{trainable_engine}: d/d {k} off by {err:.3g}"


def _model_without_frozen():
    """``_model`` with ``frozen_tanh(new)`` replaced by a constant-gradient twin: ``stop(tanh(new))``
    has zero derivative, so d/dp of ``stop(tanh(new)) + new`` is d/dp of ``new``; same weights (seed)."""
    x, h, enc = Input((3,), name="x"), Input((4,), name="h"), Input((5, 4), name="enc")
    pre = Dense(8, name="pre")(x) + Dense(8, use_bias=False, name="rec")(h)
    g = SWIGLU(pre)
    ctx = ATTEND(enc, g, name="ctx")
    new = SWISH(g + ctx, beta=1.3, name="act")
    return RecurrentModel(
        input=x, initial_states=[h], constants=[enc], output=new, final_states=[new], seed=3, return_sequences=True
    )


def test_engine_without_implementation_refuses_to_lower(engine):
    """An op registered with a numpy reference alone runs on numpy and is refused elsewhere, naming both."""
    op = rshop_core.register_op("rshoptest_numpy_only.double", reference=lambda x: 2 * x, infer=lambda t, a: t[0])
    try:
        x, h = Input((2,), name="x"), Input((2,), name="h")
        y = op(x + h, name="dbl")
        m = RecurrentModel(input=x, initial_states=[h], output=y, final_states=[y], seed=0)
        xs = np.random.default_rng(0).standard_normal((2, 3, 2))
        if engine == "numpy":
            got = run(m, "numpy", xs, "float64")[0]
            hs = np.zeros((2, 2))
            for t in range(3):
                hs = 2 * (xs[:, t] + hs)
            np.testing.assert_allclose(got, hs, rtol=0, atol=1e-12)
            return
        with pytest.raises(RshopNotImplementedError) as e:
            run(m, engine, xs)
        msg = str(e.value)
        assert f"engine {engine!r}: expected an implementation of custom op 'rshoptest_numpy_only.double'" in msg
        assert "node %" in msg and "'dbl'" in msg and f"{engine}=fn" in msg
    finally:
        custom_ops.unregister("rshoptest_numpy_only.double")
