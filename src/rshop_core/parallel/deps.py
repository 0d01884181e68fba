"""Element-level dependency propagation over a step graph: which state elements each value reads.

The flat state vector is the graph's state inputs (``graph.states`` order), each per-example shape
flattened in C order, concatenated; element ``j`` of it is a *state element*. For every node this
module works out, per element of the node's per-example value, the state elements it may read:

- ``None``: the node reads no state (parameters, literals, x and constant inputs, and everything
  computed from them alone);
- an :class:`Elements` array of shape ``(*per-example shape, m)``: each element's state elements,
  ``-1`` padding (``m`` the most any element reads);
- :class:`Coarse` (a sorted index set): every element may read any of these state elements, used when
  ``m`` would pass :data:`MAX_DEPS`, an array would pass :data:`MAX_WORK` entries, or a shape is not
  fully known. Coarse is an over-approximation: it can only merge groups, never split them.

No numbers are computed and nothing is differentiated: the rules follow each op's index algebra.
"""

from __future__ import annotations

import math
import string
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..graph import Node, StepGraph
from ..ops import COMPARE, ELEMENTWISE_BINARY, ELEMENTWISE_UNARY, Op

__all__ = ["Coarse", "Deps", "MAX_DEPS", "MAX_WORK", "node_deps", "state_offsets"]

MAX_DEPS = 64  # state elements one element may list before its node goes coarse (= the largest block)
MAX_WORK = 1 << 22  # entries of one dependency array before its node goes coarse


@dataclass(frozen=True)
class Coarse:
    """Every element of the value may read any of ``indices`` (sorted, unique flat state indices)."""

    indices: np.ndarray


Deps = np.ndarray | Coarse | None


def state_offsets(graph: StepGraph) -> list[tuple[int, int]]:
    """``(offset, size)`` of each state in the flat state vector."""
    out, offset = [], 0
    for sid in graph.states:
        size = math.prod(graph.nodes[sid].type.shape)
        out.append((offset, size))
        offset += size
    return out


def _indices(d: Deps) -> np.ndarray:
    """Every state element ``d`` lists (sorted, unique)."""
    if d is None:
        return np.zeros(0, np.int64)
    if isinstance(d, Coarse):
        return d.indices
    flat = d.reshape(-1)
    return np.unique(flat[flat >= 0])


def _coarse(ds: Sequence[Deps]) -> Coarse | None:
    idx = np.unique(np.concatenate([_indices(d) for d in ds])) if ds else np.zeros(0, np.int64)
    return Coarse(idx) if idx.size else None


def _compact(d: np.ndarray) -> np.ndarray | Coarse:
    """Rows with duplicates and padding removed (``-1`` padding first), or Coarse past the caps."""
    if d.shape[-1] <= 1:
        return d
    s = np.sort(d, axis=-1)
    dup = np.zeros(s.shape, bool)
    dup[..., 1:] = s[..., 1:] == s[..., :-1]
    s[dup] = -1
    s = np.sort(s, axis=-1)
    m = int((s >= 0).sum(axis=-1).max(initial=0))
    if m > MAX_DEPS:
        return Coarse(np.unique(s[s >= 0]))
    return s[..., s.shape[-1] - max(m, 1) :]


def _known(shape: tuple) -> bool:
    return None not in shape


def _too_big(shape: tuple, m: int) -> bool:
    return math.prod(shape) * m > MAX_WORK


def _full(d: Deps, shape: tuple) -> np.ndarray:
    """``d`` (an array or None) broadcast to ``(*shape, m)``; numpy broadcasting of the leading axes."""
    if d is None:
        return np.full((*shape, 1), -1, np.int64)
    assert isinstance(d, np.ndarray)
    lead = d.shape[:-1]
    d = d.reshape((1,) * (len(shape) - len(lead)) + d.shape)
    return np.broadcast_to(d, (*shape, d.shape[-1]))


def _union(ds: list[Deps], shape: tuple) -> Deps:
    """The elementwise union of ``ds`` (broadcast to ``shape``)."""
    live = [d for d in ds if d is not None]
    if not live:
        return None
    if any(isinstance(d, Coarse) for d in live) or not _known(shape):
        return _coarse(live)
    arrays = [_full(d, shape) for d in live]
    m = sum(a.shape[-1] for a in arrays)
    if _too_big(shape, m):
        return _coarse(live)
    return _compact(np.concatenate(arrays, axis=-1))


def _reduce(d: Deps, axes: list[int], keepdims: bool) -> Deps:
    """Union over per-example ``axes`` (negative) of ``d``."""
    if d is None or isinstance(d, Coarse):
        return d
    rank = d.ndim - 1
    pos = sorted(a + rank for a in axes)
    kept = [i for i in range(rank) if i not in pos]
    moved = np.transpose(d, kept + pos + [rank])
    lead = tuple(d.shape[i] for i in kept)
    out = _compact(moved.reshape((*lead, -1)))
    if isinstance(out, Coarse) or not keepdims:
        return out
    return out.reshape(tuple(1 if i in pos else d.shape[i] for i in range(rank)) + (out.shape[-1],))


def _einsum(node: Node, ins: list[Deps], shapes: list[tuple]) -> Deps:
    lhs, rhs = node.attrs["equation"].split("->")
    terms = lhs.split(",")
    parts: list[Deps] = []
    for term, d in zip(terms, ins):
        if d is None:
            continue
        if isinstance(d, Coarse):
            return _coarse(ins)
        red = [i - len(term) for i, c in enumerate(term) if c not in rhs]
        r = _reduce(d, red, keepdims=False)
        if isinstance(r, Coarse):
            return _coarse(ins)
        assert isinstance(r, np.ndarray)
        kept = [c for c in term if c in rhs]
        # lay the kept axes out in output order, size-1 axes where the output has letters this operand lacks
        order = sorted(range(len(kept)), key=lambda i: rhs.index(kept[i]))
        r = np.transpose(r, order + [len(kept)])
        shape = tuple(r.shape[order.index(kept.index(c))] if c in kept else 1 for c in rhs)
        parts.append(r.reshape((*shape, r.shape[-1])))
    return _union(parts, node.type.shape)


def _concat(node: Node, ins: list[Deps], shapes: list[tuple]) -> Deps:
    if any(isinstance(d, Coarse) for d in ins) or not all(_known(s) for s in shapes):
        return _coarse(ins)
    m = max(d.shape[-1] for d in ins if isinstance(d, np.ndarray))
    arrays = []
    for d, s in zip(ins, shapes):
        a = _full(d, s)
        if a.shape[-1] < m:
            a = np.concatenate([np.full((*s, m - a.shape[-1]), -1, np.int64), a], axis=-1)
        arrays.append(a)
    return np.concatenate(arrays, axis=node.attrs["axis"] - 1)


def _split_or_slice(node: Node, d: np.ndarray) -> np.ndarray:
    axis = node.attrs["axis"] - 1
    if node.op == Op.SLICE:
        begin, end = node.attrs["begin"], node.attrs["end"]
    else:
        sizes, index = node.attrs["sizes"], node.attrs["index"]
        begin = sum(sizes[:index])
        end = begin + sizes[index]
    return np.take(d, np.arange(begin, end), axis=axis)


_SAME = (Op.DROPOUT, *ELEMENTWISE_UNARY, Op.CLIP, Op.GELU, Op.LEAKY_RELU)
_UNION = (*ELEMENTWISE_BINARY, *COMPARE, Op.WHERE, Op.POW)
_LETTERS = string.ascii_letters


def node_deps(graph: StepGraph, node: Node, deps: dict[int, Deps], offsets: list[tuple[int, int]]) -> Deps:
    """The dependencies of ``node``'s value, from those of its inputs (``deps``, by node id)."""
    if node.op == Op.INPUT:
        if node.attrs["role"] != "state":
            return None
        offset, size = offsets[node.attrs["index"]]
        shape = node.type.shape
        if _too_big(shape, 1):
            return Coarse(np.arange(offset, offset + size, dtype=np.int64))
        return (offset + np.arange(size, dtype=np.int64)).reshape((*shape, 1))
    ins = [deps[i] for i in node.inputs]
    if all(d is None for d in ins):
        return None
    shapes = [graph.nodes[i].type.shape for i in node.inputs]
    if node.op in _SAME:
        return ins[0]
    if node.op in _UNION:
        return _union(ins, node.type.shape)
    if node.op == Op.EINSUM:
        return _einsum(node, ins, shapes)
    if node.op == Op.CONCAT:
        return _concat(node, ins, shapes)
    if node.op in _DTYPE_SHAPE:
        return _dtype_shape(node, ins, shapes)
    d = ins[0]
    if any(isinstance(x, Coarse) for x in ins) or not _known(node.type.shape) or not all(_known(s) for s in shapes):
        return _coarse(ins)
    assert isinstance(d, np.ndarray) and len(ins) <= 2
    if node.op == Op.MATMUL:  # w (input 1) is an unbatched parameter: never reads a state
        return _union([_reduce(d, [-1], keepdims=True)], node.type.shape) if ins[1] is None else _coarse(ins)
    if node.op in (Op.SUM, Op.MEAN, Op.MAX):
        return _reduce(d, node.attrs["axes"], node.attrs["keepdims"])
    if node.op in (Op.SOFTMAX, Op.LOG_SOFTMAX):
        return _union([_reduce(d, [node.attrs["axis"]], keepdims=True)], node.type.shape)
    if node.op in (Op.SLICE, Op.SPLIT):
        return _split_or_slice(node, d)
    if node.op == Op.RESHAPE:
        return d.reshape((*node.type.shape, d.shape[-1]))
    if node.op == Op.TRANSPOSE:
        return np.transpose(d, [*node.attrs["perm"], len(node.attrs["perm"])])
    return _coarse(ins)  # an op without an index rule here: assume it reads everything its inputs read


# -- non-float values, shape and index ops (issue 12, items 5-6) ---------------------------------
_DTYPE_SHAPE = (Op.CAST, Op.EXPAND_DIMS, Op.SQUEEZE, Op.MIN, Op.ARGMAX, Op.LOGSUMEXP, Op.CUMSUM, Op.GATHER)


def _dtype_shape(node: Node, ins: list[Deps], shapes: list[tuple]) -> Deps:
    """The rules of the ops above. A cast to int or bool keeps its dependencies (a where on it reads the
    state); ``gather`` may read any element along its axis, and its indices: it goes coarse."""
    d = ins[0]
    if node.op == Op.CAST:
        return d
    if node.op == Op.GATHER or isinstance(d, Coarse) or not _known(node.type.shape) or not _known(shapes[0]):
        return _coarse(ins)
    assert isinstance(d, np.ndarray)
    if node.op in (Op.EXPAND_DIMS, Op.SQUEEZE):
        return d.reshape((*node.type.shape, d.shape[-1]))
    if node.op in (Op.MIN, Op.LOGSUMEXP):
        return _reduce(d, node.attrs["axes"], node.attrs["keepdims"])
    if node.op == Op.ARGMAX:
        return _reduce(d, [node.attrs["axis"]], node.attrs["keepdims"])
    return _union([_reduce(d, [node.attrs["axis"]], keepdims=True)], node.type.shape)  # cumsum: along its axis
