"""The parallel linear scan, written once over a small array namespace (torch and tensorflow use it).

A linear scan computes every state of ``h_t = a_t ∘ h_{t-1} + b_t`` (t = 1..T, time axis 1), where ``∘`` is
an elementwise product (the *diagonal* form: ``a``, ``b`` of shape (B, T, N)) or a matrix-vector product per
group (the *block* form: ``a`` (B, T, G, k, k), ``b`` (B, T, G, k)). The initial state ``h0`` is folded into
the first element (``b_1 += a_1 ∘ h0``), after which the scan starts from zero.

The algorithm is the odd/even (cyclic) reduction, work-efficient: O(T) products in all, O(log T) levels of
a fixed number of array operations each. One level

1. pads an odd length with one zero element at the end (a scan is causal: a trailing element changes no
   earlier state, and its own state is cut off again);
2. *reduces*: pairs (2i, 2i+1) compose into one element ``(a_{2i+1} ∘ a_{2i}, a_{2i+1} ∘ b_{2i} + b_{2i+1})``,
   a sequence of half the length whose states are the odd-indexed states of this level;
3. recurses (or loops) on the half, and *expands*: the even-indexed states are
   ``h_{2i} = a_{2i} ∘ h_{2i-1} + b_{2i}`` (``h_{-1} = 0``), interleaved with the odd ones.

``ns`` is the engine's namespace: ``cat(list, axis)``, ``stack(list, axis)``, ``reshape(x, shape)``,
``pad_time(x, n)`` (n zero elements appended on axis 1; n may be a tensor), ``length(x)`` (axis 1's length,
an int when known) and ``batch_shape(x)`` (the shape to reshape to, may hold tensors). Basic slicing and
the ``*``, ``+``, ``@`` operators are the arrays' own.

The adjoint recurrence of the engines' backward is, with ``g_t = dL/dh_t``:
``λ_T = g_T``, ``λ_t = g_t + a_{t+1}^T λ_{t+1}``; then ``dL/db_t = λ_t``, ``dL/da_t = λ_t h_{t-1}^T``
(diagonal: ``λ_t * h_{t-1}``) and ``dL/dh0 = a_1^T λ_1``. It is a scan backwards in time with
``a'_t = a_{t+1}^T`` (and ``a'_T = 0``): ``reverse=True`` runs the same reduction with the roles in a pair
swapped (the odd element acts first, the pairs' states are the even states, and the odd ones follow from
their successors), so no sequence is copied to reverse it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = [
    "apply",
    "check_dtypes",
    "check_shapes",
    "combine",
    "expand",
    "fold_h0",
    "is_block",
    "reduce_level",
    "scan_levels",
]

Array = Any


def is_block(a: Array, b: Array) -> bool:
    """The block form (a holds one k x k matrix per group) is told by ``a.ndim == b.ndim + 1``."""
    return len(a.shape) == len(b.shape) + 1


def apply(a: Array, v: Array, block: bool) -> Array:
    """``a ∘ v``: elementwise, or the matrix-vector product over the last two axes of ``a``."""
    return (a @ v[..., None])[..., 0] if block else a * v


def combine(a1: Array, b1: Array, a2: Array, b2: Array, block: bool) -> tuple[Array, Array]:
    """(a2, b2) after (a1, b1): ``(a2 ∘ a1, a2 ∘ b1 + b2)``."""
    return (a2 @ a1 if block else a2 * a1), apply(a2, b1, block) + b2


def fold_h0(ns: Any, a: Array, b: Array, h0: Array, block: bool) -> Array:
    """``b`` with ``a_1 ∘ h0`` added to its first element."""
    first = b[:, :1] + apply(a[:, :1], h0[:, None], block)
    return ns.cat([first, b[:, 1:]], 1)


def reduce_level(ns: Any, a: Array, b: Array, block: bool, reverse: bool = False) -> tuple[Array, Array, Array, Array]:
    """One level down: the pairs' composition (length ceil(T/2)) and the elements kept for the expansion
    (the even ones; the odd ones for a ``reverse`` scan, where the later element of a pair acts first)."""
    pad = ns.length(a) % 2
    if not isinstance(pad, int) or pad:
        a, b = ns.pad_time(a, pad), ns.pad_time(b, pad)
    (a_even, a_odd), (b_even, b_odd) = _pairs(ns, a), _pairs(ns, b)
    if reverse:
        a_pair, b_pair = combine(a_odd, b_odd, a_even, b_even, block)
        return a_pair, b_pair, a_odd, b_odd
    a_pair, b_pair = combine(a_even, b_even, a_odd, b_odd, block)
    return a_pair, b_pair, a_even, b_even


def _pairs(ns: Any, x: Array) -> tuple[Array, Array]:
    """The even and odd elements of an even-length sequence (a reshape, then indexing: strided slices copy
    slowly in tensorflow)."""
    shape = ns.batch_shape(x)
    y = ns.reshape(x, [shape[0], -1, 2, *shape[2:]])
    return y[:, :, 0], y[:, :, 1]


def expand(
    ns: Any, h_pairs: Array, a_kept: Array, b_kept: Array, length: Any, block: bool, reverse: bool = False
) -> Array:
    """One level up: the states of a level of ``length`` elements from the states of its pairs (the odd
    states; the even ones for a ``reverse`` scan) and the elements :func:`reduce_level` kept."""
    if reverse:  # h_{2i+1} = a_{2i+1} ∘ h_{2i+2} + b_{2i+1}, nothing after the last
        rest = ns.cat([apply(a_kept[:, :-1], h_pairs[:, 1:], block) + b_kept[:, :-1], b_kept[:, -1:]], 1)
        both = ns.stack([h_pairs, rest], 2)
    else:  # h_{2i} = a_{2i} ∘ h_{2i-1} + b_{2i}, nothing before the first
        rest = ns.cat([b_kept[:, :1], apply(a_kept[:, 1:], h_pairs[:, :-1], block) + b_kept[:, 1:]], 1)
        both = ns.stack([rest, h_pairs], 2)  # (B, T', 2, ...): even then odd, interleaved by the reshape
    shape = ns.batch_shape(h_pairs)
    h = ns.reshape(both, [shape[0], -1, *shape[2:]])
    return h[:, :length]


def scan_levels(ns: Any, a: Array, b: Array, block: bool, reverse: bool = False) -> Array:
    """The states of ``h_t = a_t ∘ h_{t-1} + b_t`` from ``h_0 = 0``, for a length known now (a Python loop).
    ``reverse``: of ``h_t = a_t ∘ h_{t+1} + b_t`` from zero after the last element (the adjoint's form)."""
    kept = []
    while ns.length(a) > 1:
        length = ns.length(a)
        a, b, a_kept, b_kept = reduce_level(ns, a, b, block, reverse)
        kept.append((a_kept, b_kept, length))
    h = b
    for a_kept, b_kept, length in reversed(kept):
        h = expand(ns, h, a_kept, b_kept, length, block, reverse)
    return h


def check_shapes(a: Sequence[Any], b: Sequence[Any], h0: Sequence[Any], where: str) -> bool:
    """Raise :class:`~rshop_core.errors.RshopShapeError` unless the shapes form a diagonal or block scan;
    returns whether it is the block form. Dimensions that are None (unknown while tracing) match anything."""
    from rshop_core.errors import RshopShapeError

    block = len(a) == len(b) + 1
    fix = (
        "Pass a, b of shape (B, T, N) and h0 (B, N) for the diagonal form, or a (B, T, G, k, k), "
        "b (B, T, G, k) and h0 (B, G, k) for the block form."
    )
    if len(b) != (4 if block else 3):
        raise RshopShapeError(
            f"{where}: expected b of rank 3 (diagonal, a of rank 3) or 4 (block, a of rank 5), "
            f"received a of shape {_show(a)} and b of shape {_show(b)}. {fix}"
        )
    want_a = [*b, b[-1]] if block else list(b)
    want_h0 = [b[0], *b[2:]]
    if len(a) != len(want_a) or not _same(a, want_a):
        raise RshopShapeError(
            f"{where}: expected a of shape {_show(want_a)} for b of shape {_show(b)}, received {_show(a)}. {fix}"
        )
    if len(h0) != len(want_h0) or not _same(h0, want_h0):
        raise RshopShapeError(
            f"{where}: expected h0 of shape {_show(want_h0)} for b of shape {_show(b)}, received {_show(h0)}. {fix}"
        )
    return block


def _same(got: Sequence[Any], want: Sequence[Any]) -> bool:
    return all(g is None or w is None or int(g) == int(w) for g, w in zip(got, want, strict=True))


def _show(shape: Sequence[Any]) -> tuple[Any, ...]:
    return tuple(None if s is None else int(s) for s in shape)


def check_dtypes(a: str, b: str, h0: str, where: str) -> None:
    """Raise :class:`~rshop_core.errors.RshopDTypeError` unless a, b and h0 share one floating dtype (named)."""
    from rshop_core.errors import RshopDTypeError

    if not (a == b == h0) or a not in ("float16", "bfloat16", "float32", "float64"):
        raise RshopDTypeError(
            f"{where}: expected a, b and h0 of one floating dtype, received a {a}, b {b}, h0 {h0}. "
            "Cast them to the dtype the scan should compute in (nothing is converted silently)."
        )
