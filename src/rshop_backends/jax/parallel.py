"""The jax linear scan: ``jax.lax.associative_scan`` over (A, b) pairs, differentiated by jax itself.

Each element is the affine map ``h -> a_t ∘ h + b_t``; two maps compose as
``(a2, b2) ∘ (a1, b1) = (a2 ∘ a1, a2 ∘ b1 + b2)`` (an elementwise product in the diagonal form, a matrix
product per group in the block form). ``h0`` is folded into the first element (``b_1 += a_1 ∘ h0``), and the
scanned b components are the states.

The gradient is jax's own transpose of the scan's slices, pads and products. A ``jax.custom_vjp`` whose
backward is the reverse scan (the adjoint ``λ_t = g_t + a_{t+1}^T λ_{t+1}`` as one more associative scan with
``reverse=True``; ``dL/da_t = λ_t h_{t-1}^T``, ``dL/db_t = λ_t``, ``dL/dh0 = a_1^T λ_1``) is kept as
:func:`custom_vjp_scan`: it saves only ``a``, ``h0`` and ``h`` for the backward, but measured on CPU
(docs/_tp_scan.md, ``bench/anchors_parallel.py``) its forward+backward is about 10% slower, so jax's own
differentiation is the default. Both work under ``jit``, ``grad`` and ``vmap``.
Numbers stay in the arrays' dtype; products of many ``a_t`` with ``|a| < 1`` underflow gracefully to 0.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .. import scan_algorithms as alg

__all__ = ["AUTO_MAX_STEP_ELEMENTS", "AUTO_MIN_STEPS", "custom_vjp_scan", "linear_scan"]


def _compose(block: Any, first: Any, second: Any) -> Any:
    """``second`` after ``first`` for the associative scan (elements stacked on axis 1)."""
    a1, b1 = first
    a2, b2 = second
    return alg.combine(a1, b1, a2, b2, block)


def _states(a: Any, b: Any, h0: Any, block: Any, reverse: Any = False) -> Any:
    """The b components of the inclusive scan of (a, b) from h0 (reverse: from the last element backwards)."""
    end = -1 if reverse else 0
    b = b.at[:, end].add(alg.apply(a[:, end], h0, block))
    return jax.lax.associative_scan(functools.partial(_compose, block), (a, b), reverse=reverse, axis=1)[1]


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _custom(a: Any, b: Any, h0: Any, block: Any) -> Any:
    return _states(a, b, h0, block)


def _scan_fwd(a: Any, b: Any, h0: Any, block: Any) -> Any:
    h = _states(a, b, h0, block)
    return h, (a, h0, h)


def _scan_bwd(block: Any, saved: Any, g: Any) -> Any:
    a, h0, h = saved
    a_next = jnp.concatenate([a[:, 1:], jnp.zeros_like(a[:, :1])], 1)
    if block:
        a_next = jnp.swapaxes(a_next, -1, -2)
    lam = _states(a_next, g, jnp.zeros_like(h0), block, reverse=True)
    h_prev = jnp.concatenate([h0[:, None], h[:, :-1]], 1)
    da = lam[..., :, None] * h_prev[..., None, :] if block else lam * h_prev
    dh0 = alg.apply(jnp.swapaxes(a[:, 0], -1, -2) if block else a[:, 0], lam[:, 0], block)
    return da, lam, dh0


_custom.defvjp(_scan_fwd, _scan_bwd)


def _checked(a: Any, b: Any, h0: Any, where: Any) -> Any:
    a, b, h0 = jnp.asarray(a), jnp.asarray(b), jnp.asarray(h0)
    block = alg.check_shapes(a.shape, b.shape, h0.shape, where)
    alg.check_dtypes(str(a.dtype), str(b.dtype), str(h0.dtype), where)
    return a, b, h0, block


def linear_scan(a: Any, b: Any, h0: Any) -> Any:
    """All states of h_t = a_t ∘ h_{t-1} + b_t, t = 1..T (time axis 1).

    Diagonal form: a, b (B, T, N), h0 (B, N) -> h (B, T, N), h_t = a_t * h_{t-1} + b_t.
    Block form:   a (B, T, G, k, k), b (B, T, G, k), h0 (B, G, k) -> h (B, T, G, k), h_t = a_t @ h_{t-1} + b_t
                  (matrix-vector per group). The form is told by a.ndim == b.ndim + 1.
    Differentiable in a, b and h0 (by jax); jit, grad and vmap compose with it.
    """
    a, b, h0, block = _checked(a, b, h0, "jax linear_scan")
    return b if b.shape[1] == 0 else _states(a, b, h0, block)


def custom_vjp_scan(a: Any, b: Any, h0: Any) -> Any:
    """:func:`linear_scan` with a ``jax.custom_vjp`` whose backward is the reverse scan (less memory, slower
    on CPU: see the module's docstring)."""
    a, b, h0, block = _checked(a, b, h0, "jax custom_vjp_scan")
    return b if b.shape[1] == 0 else _custom(a, b, h0, block)


# -- what the shared time-parallel driver uses (rshop_backends.parallel.ArrayOps) -------------
# "auto" policy, measured by nox -s bench_parallel (docs/benchmarks-parallel.md): on CPU, XLA's compiled
# lax.scan beat the associative scan at most sizes, so "auto" keeps the sequential loop on jax
AUTO_MIN_STEPS: int | None = None
AUTO_MAX_STEP_ELEMENTS: int | None = None

reshape = jnp.reshape
concat = jnp.concatenate
stack = jnp.stack
zeros_like = jnp.zeros_like
stop_gradient = jax.lax.stop_gradient


def take(a: Any, index: np.ndarray) -> Any:
    return a[..., index]


def repeat_time(a: Any, steps: int) -> Any:
    return jnp.broadcast_to(a[:, None], (a.shape[0], steps, *a.shape[1:]))


def sum_last(a: Any) -> Any:
    return a.sum(-1)


def minus_product(f: Any, a: Any, v: Any) -> Any:
    return f - a * v


def max_change(new: Any, old: Any) -> Any:
    return jnp.max(jnp.abs(new - old)) / (1.0 + jnp.max(jnp.abs(new)))


EAGER = False


def while_loop(cond: Callable[[Any], Any], body: Callable[[Any], Any], init: tuple[Any, ...]) -> Any:
    return jax.lax.while_loop(cond, body, init)


def cond(pred: Any, true_fn: Callable[[], Any], false_fn: Callable[[], Any]) -> Any:
    return jax.lax.cond(pred, true_fn, false_fn)


def report(callback: Callable[..., Any], *values: Any) -> None:
    jax.debug.callback(callback, *values)
