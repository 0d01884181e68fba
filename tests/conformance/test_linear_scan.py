"""Every engine's parallel linear scan (``rshop_backends.<engine>.parallel.linear_scan``) against a hand-written
float64 loop of ``h_t = a_t ∘ h_{t-1} + b_t``: values in both forms at odd and even lengths, gradients against
central differences and against the framework's own autodiff of a sequential loop, and each framework's
transforms (jax jit/vmap, torch gradcheck, tensorflow tf.function with T static or unknown)."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from rshop_core.errors import RshopDTypeError, RshopShapeError

from .conftest import central_differences, harness, only_engine

LENGTHS = [0, 1, 2, 3, 7, 64, 1000]
RTOL = {"float64": 1e-10, "float32": 1e-5}
B, N, G, K = 2, 3, 2, 3


def scan_module(engine):
    harness(engine)  # loads the engine (registry) first
    return importlib.import_module(f"rshop_backends.{engine}.parallel")


def scan_fn(engine):
    """The engine's ``linear_scan`` as tests call it: jitted on jax (op by op, its levels dispatch slowly)."""
    fn = scan_module(engine).linear_scan
    if engine == "jax":
        import jax

        return jax.jit(fn)
    return fn


def loop(a, b, h0):
    """The meaning, in float64: one step at a time, the block form by einsum."""
    a, b, h = (np.asarray(v, np.float64) for v in (a, b, h0))
    block = a.ndim == b.ndim + 1
    out = np.zeros_like(b)
    for t in range(b.shape[1]):
        h = (np.einsum("bgij,bgj->bgi", a[:, t], h) if block else a[:, t] * h) + b[:, t]
        out[:, t] = h
    return out


def problem(form, T, seed=0, batch=B, n=N, groups=G, k=K):
    """(a, b, h0) with a contraction per step (|a| < 1, block spectral norms 0.95), so states stay O(1)."""
    rng = np.random.default_rng(seed)
    if form == "diagonal":
        return rng.uniform(-1, 1, (batch, T, n)), rng.standard_normal((batch, T, n)), rng.standard_normal((batch, n))
    m = rng.standard_normal((batch, T, groups, k, k))
    m *= 0.95 / np.linalg.norm(m, ord=2, axis=(-2, -1))[..., None, None]
    return m, rng.standard_normal((batch, T, groups, k)), rng.standard_normal((batch, groups, k))


def relative_error(got, want):
    """max |got - want| over max(max |want|, 1)."""
    err = np.max(np.abs(np.asarray(got, np.float64) - want), initial=0.0)
    return float(err / max(np.max(np.abs(want), initial=0.0), 1.0))


# every length in float64; float32 (its precision, not the odd/even logic, under test) at an odd and a long one
CASES = [(T, "float64") for T in LENGTHS] + [(3, "float32"), (1000, "float32")]


@pytest.mark.parametrize(("T", "dtype"), CASES, ids=[f"T={t}-{d}" for t, d in CASES])
@pytest.mark.parametrize("form", ["diagonal", "block"])
def test_states_match_the_loop(engine, form, T, dtype):
    h = harness(engine)
    arrays = problem(form, T, seed=T)
    want = loop(*arrays)
    with h.float64_scope():
        got = h.to_numpy(scan_fn(engine)(*(h.to_native(v, dtype) for v in arrays)))
    assert got.shape == want.shape and got.dtype == np.dtype(dtype)
    err = relative_error(got, want)
    assert err <= RTOL[dtype], f"{engine} {form} T={T} {dtype}: relative error {err:.3g} > {RTOL[dtype]:g}"


def test_float32_long_products_underflow_to_zero(engine):
    """T 1000 with a in (0, 0.5): the products the reduction forms reach 1e-300 (0 in float32), no NaN."""
    h = harness(engine)
    rng = np.random.default_rng(3)
    a, b, h0 = rng.uniform(0, 0.5, (1, 1000, 4)), rng.uniform(0, 1, (1, 1000, 4)), np.full((1, 4), 1e30)
    got = h.to_numpy(scan_fn(engine)(*(h.to_native(v, "float32") for v in (a, b, h0))))
    want = loop(a, b, h0)
    assert np.all(np.isfinite(got))
    assert relative_error(got[:, 60:], want[:, 60:]) <= 1e-5  # past the 1e30 start's decay
    assert np.abs(got[:, 0] - want[:, 0]).max() <= 1e-5 * np.abs(want[:, 0]).max()


# ---- gradients: each framework's autodiff through its scan --------------------------------------------------


def grads_of(engine, fn, arrays, weights, dtype="float64"):
    """d sum(fn(a, b, h0) * weights) / d (a, b, h0) by ``engine``'s autodiff, as float64 numpy arrays."""
    if engine == "torch":
        import torch

        ts = [torch.tensor(v, dtype=getattr(torch, dtype), requires_grad=True) for v in arrays]
        (fn(*ts) * torch.as_tensor(weights, dtype=ts[0].dtype)).sum().backward()
        return [t.grad.numpy().astype(np.float64) for t in ts]
    if engine == "jax":
        import jax
        import jax.numpy as jnp

        with jax.enable_x64(True):
            xs = [jnp.asarray(v, dtype) for v in arrays]
            gs = jax.jit(jax.grad(lambda *x: (fn(*x) * jnp.asarray(weights, dtype)).sum(), (0, 1, 2)))(*xs)
            return [np.asarray(g, np.float64) for g in gs]
    import tensorflow as tf

    xs = [tf.constant(v, dtype) for v in arrays]
    with tf.GradientTape() as tape:
        tape.watch(xs)
        loss = tf.reduce_sum(fn(*xs) * tf.constant(weights, dtype))
    return [g.numpy().astype(np.float64) for g in tape.gradient(loss, xs)]


def sequential(engine):
    """The framework's own sequential loop of the recurrence (differentiated by the framework)."""
    stack = {"torch": "torch.stack", "jax": "jax.numpy.stack", "tensorflow": "tensorflow.stack"}[engine]
    module, _, name = stack.rpartition(".")
    stack = getattr(importlib.import_module(module), name)

    def run(a, b, h):
        block = len(a.shape) == len(b.shape) + 1
        if engine == "jax":  # jax.lax.scan: a Python loop of 64 steps would take seconds to differentiate
            import jax.numpy as jnp
            from jax import lax

            step = lambda h, ab: ((ab[0] @ h[..., None])[..., 0] if block else ab[0] * h) + ab[1]
            _, hs = lax.scan(lambda h, ab: (step(h, ab),) * 2, h, (jnp.swapaxes(a, 0, 1), jnp.swapaxes(b, 0, 1)))
            return jnp.swapaxes(hs, 0, 1)
        out = []
        for t in range(b.shape[1]):
            h = ((a[:, t] @ h[..., None])[..., 0] if block else a[:, t] * h) + b[:, t]
            out.append(h)
        return stack(out, 1)

    return run


@pytest.mark.parametrize("T", [1, 2, 7], ids=lambda t: f"T={t}")
@pytest.mark.parametrize("form", ["diagonal", "block"])
def test_gradients_match_central_differences(trainable_engine, form, T):
    arrays = problem(form, T, seed=10 + T, batch=2, n=2, groups=2, k=2)
    weights = np.random.default_rng(1).standard_normal(loop(*arrays).shape)
    got = grads_of(trainable_engine, scan_module(trainable_engine).linear_scan, arrays, weights)
    params = dict(zip("ab", [v.copy() for v in arrays[:2]], strict=True)) | {"h0": arrays[2].copy()}
    want = central_differences(params, lambda: float(np.sum(loop(params["a"], params["b"], params["h0"]) * weights)))
    for name, g in zip(("a", "b", "h0"), got, strict=True):
        err = np.abs(g - want[name]).max() / np.abs(want[name]).max()
        assert err <= 1e-7, f"{trainable_engine} {form} T={T}: d/d{name} relative error {err:.3g}"


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("form", ["diagonal", "block"])
def test_gradients_match_autodiff_of_a_sequential_loop(trainable_engine, form, dtype):
    arrays = problem(form, 64, seed=20)
    weights = np.random.default_rng(2).standard_normal(loop(*arrays).shape)
    got = grads_of(trainable_engine, scan_module(trainable_engine).linear_scan, arrays, weights, dtype)
    want = grads_of(trainable_engine, sequential(trainable_engine), arrays, weights, "float64")
    for name, g, w in zip(("a", "b", "h0"), got, want, strict=True):
        err = relative_error(g, w)
        assert err <= RTOL[dtype], f"{trainable_engine} {form} {dtype}: d/d{name} relative error {err:.3g}"


# ---- errors ------------------------------------------------------------------------------------------------


def test_shape_mismatch_is_refused(engine):
    h, mod = harness(engine), scan_module(engine)
    a, b, h0 = (h.to_native(v, "float32") for v in problem("diagonal", 4))
    with pytest.raises(RshopShapeError, match=r"linear_scan: expected a of shape \(2, 4, 3\) .*received \(2, 4, 2\)"):
        mod.linear_scan(a[..., :2], b, h0)
    with pytest.raises(RshopShapeError, match=r"expected h0 of shape \(2, 3\) .*received \(2, 4\)"):
        mod.linear_scan(a, b, h.to_native(np.zeros((2, 4)), "float32"))
    with pytest.raises(RshopShapeError, match=r"expected b of rank 3 \(diagonal, a of rank 3\) or 4"):
        mod.linear_scan(a, b[..., None], h0)


def test_block_shape_mismatch_is_refused(engine):
    h, mod = harness(engine), scan_module(engine)
    a, b, h0 = (h.to_native(v, "float32") for v in problem("block", 4))
    with pytest.raises(RshopShapeError, match=r"expected a of shape \(2, 4, 2, 3, 3\) .*received \(2, 4, 2, 3, 2\)"):
        mod.linear_scan(a[..., :2], b, h0)


def test_mixed_dtypes_are_refused(engine):
    h, mod = harness(engine), scan_module(engine)
    a, b, h0 = problem("diagonal", 4)
    with h.float64_scope():
        args = h.to_native(a, "float32"), h.to_native(b, "float64"), h.to_native(h0, "float32")
        with pytest.raises(RshopDTypeError, match=r"received a float32, b float64, h0 float32\. Cast them"):
            mod.linear_scan(*args)


# ---- each framework's own transforms -----------------------------------------------------------------------


def test_jax_jit_and_vmap(request):
    only_engine(request, "jax", "jit/vmap of the jax scan")
    import jax
    import jax.numpy as jnp

    from rshop_backends.jax.parallel import custom_vjp_scan, linear_scan

    stacked = [problem("block", 7, seed=s) for s in range(3)]  # a leading axis of 3 problems, mapped by vmap
    a, b, h0 = (np.stack(v) for v in zip(*stacked, strict=True))
    with jax.enable_x64(True):
        got = jax.jit(jax.vmap(linear_scan))(jnp.asarray(a), jnp.asarray(b), jnp.asarray(h0))
        for i, arrays in enumerate(stacked):
            assert relative_error(got[i], loop(*arrays)) <= 1e-12
        loss = lambda f: lambda *x: jnp.sum(jax.vmap(f)(*x) ** 2)
        g_auto = jax.jit(jax.grad(loss(linear_scan), (0, 1, 2)))(a, b, h0)
        g_custom = jax.jit(jax.grad(loss(custom_vjp_scan), (0, 1, 2)))(a, b, h0)
    for x, y in zip(g_auto, g_custom, strict=True):
        assert relative_error(x, np.asarray(y)) <= 1e-12


@pytest.mark.parametrize("form", ["diagonal", "block"])
def test_jax_custom_vjp_matches_central_differences(request, form):
    only_engine(request, "jax", "the jax scan's custom VJP")
    from rshop_backends.jax.parallel import custom_vjp_scan

    arrays = problem(form, 5, seed=31, batch=1, n=2, groups=2, k=2)
    weights = np.random.default_rng(4).standard_normal(loop(*arrays).shape)
    got = grads_of("jax", custom_vjp_scan, arrays, weights)
    params = {"a": arrays[0].copy(), "b": arrays[1].copy(), "h0": arrays[2].copy()}
    want = central_differences(params, lambda: float(np.sum(loop(params["a"], params["b"], params["h0"]) * weights)))
    for name, g in zip(("a", "b", "h0"), got, strict=True):
        assert np.abs(g - want[name]).max() <= 1e-7 * np.abs(want[name]).max(), name


@pytest.mark.parametrize("form", ["diagonal", "block"])
def test_torch_gradcheck(request, form):
    only_engine(request, "torch", "gradcheck of the torch scan")
    import torch

    from rshop_backends.torch.parallel import linear_scan

    arrays = [torch.tensor(v, requires_grad=True) for v in problem(form, 5, seed=40, batch=2, n=2, groups=1, k=2)]
    assert torch.autograd.gradcheck(linear_scan, arrays)
    assert torch.autograd.gradgradcheck(linear_scan, arrays)  # the backward is itself differentiable


@pytest.mark.parametrize("T", [2048, 2055, 16411], ids=lambda t: f"T={t}")
def test_torch_recursive_chunks(request, T):
    # From RECURSE_FROM steps torch's scan chunks by 8 and recurses on the chunks' own scan, with steps
    # left over at each level; its backward reads a one step ahead without a shifted copy.
    only_engine(request, "torch", "the torch scan's recursive chunks")
    import torch

    from rshop_backends.torch import parallel

    assert T >= parallel.RECURSE_FROM
    arrays = problem("diagonal", T, seed=T, batch=2, n=3)
    weights = np.random.default_rng(3).standard_normal((2, T, 3))
    want = loop(*arrays)
    a, b, h0 = (torch.tensor(v) for v in arrays)
    with torch.no_grad():
        forwards = parallel._chunked(a, b, h0, reverse=False).numpy()
        backwards = parallel._chunked(a.flip(1), b.flip(1), h0, reverse=True).flip(1).numpy()
    assert relative_error(forwards, want) <= 1e-12 and relative_error(backwards, want) <= 1e-12
    # dL/db_t = λ_t = w_t + a_{t+1} λ_{t+1}; dL/da_t = λ_t h_{t-1}; dL/dh0 = a_1 λ_1
    a_next = np.concatenate([arrays[0][:, 1:], np.zeros_like(arrays[0][:, :1])], 1)
    lam = np.flip(loop(np.flip(a_next, 1), np.flip(weights, 1), np.zeros((2, 3))), 1)
    h_prev = np.concatenate([arrays[2][:, None], want[:, :-1]], 1)
    da, db, dh0 = grads_of("torch", parallel.linear_scan, arrays, weights)
    assert relative_error(db, lam) <= 1e-12 and relative_error(da, lam * h_prev) <= 1e-12
    assert relative_error(dh0, arrays[0][:, 0] * lam[:, 0]) <= 1e-12


def test_tensorflow_static_and_unknown_length(request):
    only_engine(request, "tensorflow", "tf.function tracing of the tensorflow scan")
    import tensorflow as tf

    from rshop_backends.tensorflow.parallel import linear_scan

    def value_and_grads(a, b, h0):
        with tf.GradientTape() as tape:
            tape.watch([a, b, h0])
            h = linear_scan(a, b, h0)
            loss = tf.reduce_sum(h * h)
        return h, tape.gradient(loss, [a, b, h0])

    spec = [tf.TensorSpec([None, None, G, K, K], tf.float64), tf.TensorSpec([None, None, G, K], tf.float64)]
    unknown = tf.function(value_and_grads, input_signature=[*spec, tf.TensorSpec([None, G, K], tf.float64)])
    static = tf.function(value_and_grads)
    for T in (1, 2, 7, 64):
        arrays = problem("block", T, seed=50 + T)
        want_h = loop(*arrays)
        want_g = grads_of("tensorflow", sequential("tensorflow"), arrays, 2 * want_h)  # d sum(h^2) = 2h
        for fn in (unknown, static):
            h, grads = fn(*(tf.constant(v) for v in arrays))
            assert relative_error(h.numpy(), want_h) <= 1e-12
            for g, w in zip(grads, want_g, strict=True):
                assert relative_error(g.numpy(), w) <= 1e-12
    assert unknown.experimental_get_tracing_count() == 1  # one trace serves every T
    assert static.experimental_get_tracing_count() == 4

    unknown_rank = tf.function(linear_scan, input_signature=[tf.TensorSpec(None, tf.float64)] * 3)
    with pytest.raises(RshopShapeError, match=r"expected a, b and h0 of known rank, received shapes <unknown>"):
        unknown_rank.get_concrete_function()


def test_tensorflow_scan_in_a_cond_branch(request):
    # A tf.cond branch handing the function's own argument (h0) straight to the scan's custom gradient
    # broke cond_v2's gradient (AssertionError in _resolve_grad_inputs) until the scan took identities.
    only_engine(request, "tensorflow", "tf.cond around the tensorflow scan")
    import tensorflow as tf

    from rshop_backends.tensorflow.parallel import linear_scan

    arrays = problem("diagonal", 9, seed=60)
    a, b = (tf.Variable(v) for v in arrays[:2])

    @tf.function
    def run(h0):
        h = linear_scan(a, b, h0)
        return tf.cond(tf.reduce_max(h) > 1e9, lambda: h, lambda: linear_scan(a, b, h0))

    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(run(tf.constant(arrays[2])))
    grads = tape.gradient(loss, [a, b])
    want = grads_of("tensorflow", sequential("tensorflow"), arrays, np.ones((B, 9, N)))
    for g, w in zip(grads, want[:2], strict=True):
        assert relative_error(g.numpy(), w) <= 1e-12
