"""The torch linear scan, with the reverse scan as its backward.

``linear_scan(a, b, h0)`` is a ``torch.autograd.Function``: the forward keeps ``a``, ``h0`` and the states
``h``; the backward runs the scan backwards in time to get the adjoint ``λ`` (``λ_t = g_t + a_{t+1}^T λ_{t+1}``)
and returns ``dL/da_t = λ_t h_{t-1}^T``, ``dL/db_t = λ_t`` and ``dL/dh0 = a_1^T λ_1``.

- The diagonal form, with no graph to record (every forward; a backward without ``create_graph``), runs
  in chunks (:func:`_chunked`): some 2 sqrt(T) tensor operations, written in place, and from
  :data:`RECURSE_FROM` steps chunks of 8 whose own scan is chunked again.
- The block form and a backward that records a graph (a second derivative) run
  :func:`rshop_backends.scan_algorithms.scan_levels`, the work-efficient odd/even reduction written with
  differentiable operations: about a dozen tensor operations per level, ceil(log2 T) levels.

Numbers stay in the tensors' dtype (float32 accumulates in float32): the products of many ``a_t`` that
either form builds underflow gracefully to 0 when ``|a| < 1``, as the sequential loop's contributions do.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from .. import scan_algorithms as alg
from ..parallel import eager_cond, eager_while_loop

__all__ = ["AUTO_MAX_STEP_ELEMENTS", "AUTO_MIN_STEPS", "linear_scan"]


class _Torch:
    """The namespace :mod:`rshop_backends.scan_algorithms` computes with."""

    cat = staticmethod(torch.cat)
    stack = staticmethod(torch.stack)
    reshape = staticmethod(torch.reshape)

    @staticmethod
    def length(x: Any) -> Any:
        return x.shape[1]

    @staticmethod
    def batch_shape(x: Any) -> Any:
        return list(x.shape)

    @staticmethod
    def pad_time(x: Any, n: Any) -> Any:
        return torch.cat([x, x.new_zeros((x.shape[0], n, *x.shape[2:]))], 1)


NS = _Torch()


def _forward(a: Any, b: Any, h0: Any, block: Any) -> Any:
    if b.shape[1] == 0:
        return b.clone()
    if not block and not torch.is_grad_enabled():
        return _chunked(a, b, h0, reverse=False)
    return alg.scan_levels(NS, a, alg.fold_h0(NS, a, b, h0, block), block)


def chunk_length(steps: int) -> int:
    """The chunk length of :func:`_sqrt_chunks`: the power of two nearest sqrt(T) (T 256: 16, 1024: 32),
    which balances its 2 L operations within chunks against its T / L across them."""
    return 1 << max(1, round(np.log2(max(steps, 1)) / 2))


# From this T the scan is chunked by 8 and the chunks' own scan recursed on (:func:`_scan_into`); below
# it, sqrt(T) chunks with a sequential pass across them (:func:`_sqrt_chunks`). Measured at (8, T, 32),
# float32: at T 4096 0.68 against 1.11 ms on two threads (0.92 against 1.16 on one), even at 1024,
# slower below (T 256: 0.21 against 0.16 ms).
RECURSE_FROM = 2048
RECURSE_CHUNK = 8


def _chunked(a: Any, b: Any, h0: Any, reverse: bool) -> Any:
    """The diagonal scan ``h_t = a_t h_{t-1} + b_t`` from ``h0`` (``reverse``: ``h_t = a_t h_{t+1} + b_t``
    from ``h0`` after the last element) in chunks (decision 75), into a new tensor. Not differentiable
    (``out=``): the autograd function calls it without recording."""
    out = torch.empty_like(b)
    _scan_into(a.contiguous(), b.contiguous(), h0, out, reverse)
    return out


def _scan_into(a: Any, b: Any, h: Any, out: Any, reverse: bool) -> Any:
    """Write the diagonal scan of ``a``, ``b`` (B, T, N) from ``h`` into ``out``; return the last state.
    ``a``, ``b`` and ``out`` are contiguous, or time slices of contiguous tensors (views split T).

    From :data:`RECURSE_FROM` steps, chunks of L = 8: each chunk's last state from a zero start (L
    ``addcmul`` s over every chunk at once) and the product of its ``a`` (one ``torch.prod``) make a scan
    T / L long, solved by this function; from the states entering the chunks, L more ``addcmul`` s write
    every state. About 2 L operations per level and log_L T levels instead of T steps."""
    B, T, N = b.shape
    if T < RECURSE_FROM:
        return _sqrt_chunks(a, b, h, out, reverse)
    L = RECURSE_CHUNK
    C = T // L
    T1 = C * L
    lo = T - T1 if reverse else 0  # the chunks cover the first T1 steps (the last, backwards); the rest follow
    av, bv, ov = (v[:, lo : lo + T1].view(B, C, L, N) for v in (a, b, out))
    order = range(L - 1, -1, -1) if reverse else range(L)
    e = bv[:, :, order[0]]
    for i in order[1:]:
        e = torch.addcmul(bv[:, :, i], av[:, :, i], e)
    ends = torch.empty_like(e)
    last = _scan_into(torch.prod(av, 2), e, h, ends, reverse)
    starts = torch.empty_like(e)  # the state entering each chunk: h, or the previous chunk's end
    if reverse:
        starts[:, :-1], starts[:, -1] = ends[:, 1:], h
    else:
        starts[:, 1:], starts[:, 0] = ends[:, :-1], h
    s = starts
    for i in order:
        s = torch.addcmul(bv[:, :, i], av[:, :, i], s, out=ov[:, :, i])
    for t in range(lo - 1, -1, -1) if reverse else range(T1, T):
        last = torch.addcmul(b[:, t], a[:, t], last, out=out[:, t])
    return last


def _sqrt_chunks(a: Any, b: Any, h: Any, out: Any, reverse: bool) -> Any:
    """:func:`_scan_into` below :data:`RECURSE_FROM` steps, in chunks of L = :func:`chunk_length` steps:

    1. each chunk's last state from a zero start: L steps, each one ``addcmul`` over every chunk at once;
    2. the states entering each chunk: C = T // L steps of ``s <- A_c s + e_c`` with ``A_c`` the product of
       the chunk's ``a`` (``torch.prod``) and ``e_c`` its last state from step 1;
    3. every state: L steps again from those starts, written in place into ``out``.

    About 2 L + T / L operations instead of T, and three passes over the data (the odd/even reduction's
    levels make a dozen, with a copy each); the T - C L steps left over run one by one."""
    B, T, N = b.shape
    L = chunk_length(T)
    C = T // L
    T1 = C * L if C >= 2 else 0
    if reverse:  # the steps after the chunks come first
        for t in range(T - 1, T1 - 1, -1):
            h = torch.addcmul(b[:, t], a[:, t], h, out=out[:, t])
    if T1:
        av = a[:, :T1].view(B, C, L, N)
        al, bl, ol = av.unbind(2), b[:, :T1].view(B, C, L, N).unbind(2), out[:, :T1].view(B, C, L, N).unbind(2)
        order = range(L - 1, -1, -1) if reverse else range(L)
        e = bl[order[0]].clone()
        for i in order[1:]:
            e = torch.addcmul(bl[i], al[i], e)
        starts = torch.empty((B, C, N), dtype=b.dtype, device=b.device)
        sl, Al, el = starts.unbind(1), torch.prod(av, 2).unbind(1), e.unbind(1)
        for c in range(C - 1, -1, -1) if reverse else range(C):
            sl[c].copy_(h)
            h = torch.addcmul(el[c], Al[c], h)
        s = starts
        for i in order:
            s = torch.addcmul(bl[i], al[i], s, out=ol[i])
    if not reverse:
        for t in range(T1, T):
            h = torch.addcmul(b[:, t], a[:, t], h, out=out[:, t])
    return h


def _adjoint(a: Any, g: Any, block: Any) -> Any:
    """λ with λ_T = g_T and λ_t = g_t + a_{t+1}^T λ_{t+1}: the reverse scan (no time reversal copies;
    the diagonal form reads ``a`` one step ahead in place, without a shifted copy)."""
    if not block and not torch.is_grad_enabled():
        a, g = a.contiguous(), g.contiguous()
        lam = torch.empty_like(g)
        lam[:, -1] = g[:, -1]
        _scan_into(a[:, 1:], g[:, :-1], g[:, -1], lam[:, :-1], reverse=True)
        return lam
    a_next = torch.cat([a[:, 1:], torch.zeros_like(a[:, :1])], 1)
    if block:
        a_next = a_next.transpose(-1, -2)
    return alg.scan_levels(NS, a_next, g, block, reverse=True)


def _grads(a: Any, h0: Any, h: Any, g: Any, block: Any) -> Any:
    """(dL/da, dL/db, dL/dh0) from the states ``h`` and ``g = dL/dh``."""
    lam = _adjoint(a, g, block)
    if block or torch.is_grad_enabled():  # differentiable (a second derivative)
        h_prev = torch.cat([h0[:, None], h[:, :-1]], 1)
        da = lam[..., :, None] * h_prev[..., None, :] if block else lam * h_prev
    else:  # λ_t h_{t-1} without building the shifted states
        da = torch.empty_like(a)
        torch.mul(lam[:, 1:], h[:, :-1], out=da[:, 1:])
        torch.mul(lam[:, 0], h0, out=da[:, 0])
    dh0 = alg.apply(a[:, 0].transpose(-1, -2) if block else a[:, 0], lam[:, 0], block)
    return da, lam, dh0


class _LinearScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, a: Any, b: Any, h0: Any, block: Any) -> Any:
        h = _forward(a, b, h0, block)
        ctx.save_for_backward(a, h0, h)
        ctx.block = block
        return h

    @staticmethod
    def backward(ctx: Any, g: Any) -> Any:
        a, h0, h = ctx.saved_tensors
        if g is None or h.shape[1] == 0:
            return torch.zeros_like(a), torch.zeros_like(h), torch.zeros_like(h0), None
        da, db, dh0 = _grads(a, h0, h, g, ctx.block)
        return da, db, dh0, None


def linear_scan(a: Any, b: Any, h0: Any) -> Any:
    """All states of h_t = a_t ∘ h_{t-1} + b_t, t = 1..T (time axis 1).

    Diagonal form: a, b (B, T, N), h0 (B, N) -> h (B, T, N), h_t = a_t * h_{t-1} + b_t.
    Block form:   a (B, T, G, k, k), b (B, T, G, k), h0 (B, G, k) -> h (B, T, G, k), h_t = a_t @ h_{t-1} + b_t
                  (matrix-vector per group). The form is told by a.ndim == b.ndim + 1.
    Differentiable in a, b and h0 (a ``torch.autograd.Function`` whose backward is the reverse scan).
    """
    block = alg.check_shapes(a.shape, b.shape, h0.shape, "torch linear_scan")
    name = lambda t: str(t.dtype).removeprefix("torch.")
    alg.check_dtypes(name(a), name(b), name(h0), "torch linear_scan")
    return _LinearScan.apply(a, b, h0, block)


# -- what the shared time-parallel driver uses (rshop_backends.parallel.ArrayOps) -------------
# "auto" policy, measured by nox -s bench_parallel (docs/benchmarks-parallel.md): the scan is faster from
# T = 256 (forward) and 64 (forward + backward) at 256 state elements per step (batch x N); at 2048 (batch 8 x
# 256 units) the forward-only scan never caught up (0.73x at T 4096), so the bound sits between the two
AUTO_MIN_STEPS: int | None = 256
AUTO_MAX_STEP_ELEMENTS: int | None = 1024

reshape = torch.reshape
concat = torch.cat
stack = torch.stack
zeros_like = torch.zeros_like


def take(a: Any, index: np.ndarray) -> Any:
    return a[..., torch.as_tensor(index, device=a.device)]


def repeat_time(a: Any, steps: int) -> Any:
    return a[:, None].expand(a.shape[0], steps, *a.shape[1:])


def stop_gradient(a: Any) -> Any:
    return a.detach()


def sum_last(a: Any) -> Any:
    return a.sum(-1)


def max_change(new: Any, old: Any) -> Any:
    # aminmax: one pass each and no |x| array (20% faster than abs and max at (8, 4096, 32) on CPU);
    # not torch.linalg.vector_norm(·, inf), measured several times slower. Both propagate NaN.
    low, high = torch.aminmax(new - old)
    new_low, new_high = torch.aminmax(new)
    return torch.maximum(-low, high) / (1.0 + torch.maximum(-new_low, new_high))


def minus_product(f: Any, a: Any, v: Any) -> Any:
    return torch.addcmul(f, a, v, value=-1)


EAGER = True
while_loop = eager_while_loop
cond = eager_cond


def report(callback: Callable[..., Any], *values: Any) -> None:
    callback(*[v.item() if isinstance(v, torch.Tensor) else v for v in values])
