"""What :func:`~rshop_core.convert.keras_step.from_keras_step` translates beyond Dense, activations and merges:
indexing (``x[:, :E]``, Keras' ``GetItem``), the shape and reduction ``keras.ops`` (``split``, ``einsum``,
``matmul``, ``sum`` / ``mean`` / ``max`` / ``min``, ``expand_dims``, ``squeeze``, ``reshape``, ``transpose``,
``concatenate``), the ``Dot`` layer, and Keras ``SimpleRNNCell`` / ``GRUCell`` / ``LSTMCell`` called inside
the step (they become rshop's cells of the same kind, weights carried over).

Every translation is exact: it builds the same numbers with ops of the closed set, or refuses with the
reason. Keras axes count the batch; rshop's never do, so every axis is checked (the batch axis is refused)
and converted here. keras is imported only by the caller.
"""

from __future__ import annotations

import builtins
import itertools
import string
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, Protocol

import numpy as np

from .. import functional as F
from ..cells.base import Cell
from ..symbolic import Tensor

__all__ = ["OPS", "CELLS", "translate_op", "translate_cell", "dot_layer", "nearest_form"]

# the keras.ops operations (by class name) translated here; the elementwise ones are keras_step's
OPS = (
    "GetItem",
    "Split",
    "Einsum",
    "Matmul",
    "Sum",
    "Mean",
    "Max",
    "Min",
    "ExpandDims",
    "Squeeze",
    "Reshape",
    "Transpose",
    "Concatenate",
)
CELLS = {"SimpleRNNCell": "rnn", "GRUCell": "gru", "LSTMCell": "lstm"}

# the supported form nearest to what a user may have written instead (by Keras class name)
_NEAREST = {
    "Lambda": "the keras.ops calls it makes written in the step (x[:, a:b], keras.ops.split, keras.ops.einsum, "
    "keras.ops.sum, ...)",
    "SimpleRNN": "keras.layers.SimpleRNNCell called on (x_t, states) inside the step",
    "GRU": "keras.layers.GRUCell called on (x_t, states) inside the step",
    "LSTM": "keras.layers.LSTMCell called on (x_t, states) inside the step",
    "RNN": "its cells (SimpleRNNCell, GRUCell, LSTMCell) called inside the step",
    "StackedRNNCells": "the cells called one after another inside the step",
    "Permute": "keras.ops.transpose(x, (0, ...)) keeping the batch axis first",
    "Flatten": "Reshape((n,))",
    "Attention": "keras.ops.einsum scores, keras.ops.softmax and keras.ops.einsum over the constant",
    "AdditiveAttention": "Dense scores, keras.ops.softmax and keras.ops.einsum over the constant",
    "MultiHeadAttention": "keras.ops.einsum scores, keras.ops.softmax and keras.ops.einsum over the constant",
    "PReLU": "LeakyReLU(negative_slope) (a fixed slope)",
    "Argmin": "keras.ops.argmax(-x, axis)",
    "LayerNormalization": "keras.ops.mean, keras.ops.sqrt and arithmetic on the step's tensors",
    "Embedding": "keras.ops.take(table, ids, axis=0) with a constant numpy table, or a Dense layer on one-hot inputs",
    "Stack": "keras.ops.concatenate of x[:, None] pieces",
    "Dot": "Dot(axes=...) with normalize=False, or keras.ops.einsum",
}


def nearest_form(kind: str) -> str | None:
    """The supported form to write instead of Keras class ``kind``, if one is known."""
    return _NEAREST.get(kind)


class Importer(Protocol):
    """What the translations need from ``keras_step._Importer``."""

    def rshop_layer(self, op: Any, make: Callable[[], Cell]) -> Cell: ...


Fail = Callable[..., NoReturn]  # fail(op, why): raise the importer's RshopConfigError


def _tensor(fail: Fail, op: Any, a: Any, what: str = "argument") -> Tensor:
    if not isinstance(a, Tensor):
        fail(op, f"{what} {a!r} is not a tensor of the step")
    return a


def _axis(fail: Fail, op: Any, axis: Any, rank: int) -> int:
    """Keras axis ``axis`` (counting the batch) of a value of per-example rank ``rank`` -> rshop's negative axis."""
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        fail(op, f"axis {axis!r}: expected one int")
    a = int(axis)
    if a == 0 or a == -(rank + 1):
        fail(op, f"axis {a} is the batch axis (expected a per-example axis: 1..{rank} or -1..-{rank})")
    if not -(rank + 1) < a <= rank:
        fail(op, f"axis {a} is out of range for a value of rank {rank + 1} (the batch included)")
    return a - (rank + 1) if a > 0 else a


def _axes(fail: Fail, op: Any, axis: Any, rank: int) -> list[int]:
    if axis is None:
        fail(op, "axis=None reduces over the batch too (expected per-example axes, e.g. axis=-1)")
    seq = list(axis) if isinstance(axis, (list, tuple)) else [axis]
    return sorted({_axis(fail, op, a, rank) for a in seq})


def _drop(x: Tensor, axes: Sequence[int]) -> Tensor:
    """``x`` without its size-1 per-example ``axes`` (negative): the ``squeeze`` op."""
    return F.squeeze(x, list(axes)) if axes else x


def _insert(x: Tensor, positions: Sequence[int]) -> Tensor:
    """``x`` with size-1 axes at output positions ``positions`` (0-based, per example): one ``expand_dims``
    per new axis, in increasing position (each lands where the result has it)."""
    for p in sorted(positions):
        x = F.expand_dims(x, p - (len(x.shape) + 1))
    return x


def _bounds(fail: Fail, op: Any, e: builtins.slice, n: int | None, axis_no: int) -> tuple[int, int] | None:
    """``(begin, end)`` of slice ``e`` on an axis of size ``n`` (Keras axis ``axis_no``), None for the whole axis."""
    if e.step not in (None, 1):
        fail(op, f"slice step {e.step} (expected a step of 1: slices x[:, a:b]; or keras.ops.split)")
    for v in (e.start, e.stop):
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer))):
            fail(op, f"slice bound {v!r} (expected constant ints)")
    if n is not None:
        begin, end, _ = e.indices(n)
        if end <= begin:
            fail(op, f"an empty slice {e.start}:{e.stop} of axis {axis_no} (size {n})")
        return None if (begin, end) == (0, n) else (begin, end)
    begin = int(e.start or 0)
    if begin < 0 or (e.stop is not None and e.stop < 0):
        fail(op, f"a negative slice bound on axis {axis_no}, whose size is unknown (expected bounds >= 0)")
    if e.stop is None:
        if begin:
            fail(op, f"slice {begin}: of axis {axis_no}, whose size is unknown (expected x[..., {begin}:end])")
        return None
    if int(e.stop) <= begin:
        fail(op, f"an empty slice {begin}:{e.stop} of axis {axis_no}")
    return begin, int(e.stop)


def _index(fail: Fail, op: Any, e: int, n: int | None, axis_no: int) -> int:
    i = int(e)
    if i < 0:
        if n is None:
            fail(op, f"negative index {i} on axis {axis_no}, whose size is unknown")
        i += n
    if i < 0 or (n is not None and i >= n):
        fail(op, f"index {int(e)} out of range for axis {axis_no} of size {n}")
    return i


def _entries(fail: Fail, op: Any, key: Any, rank: int) -> list[Any]:
    """The index ``key`` as one entry per axis (the batch first), '...' and missing trailing axes as ':'."""
    entries = list(key) if isinstance(key, tuple) else [key]
    n_ell = builtins.sum(e is Ellipsis for e in entries)
    if n_ell > 1:
        fail(op, "more than one '...' in the index")
    used = builtins.sum(e is not None and e is not Ellipsis for e in entries)
    if used > rank + 1:
        fail(op, f"{used} indices for a value of rank {rank + 1} (the batch included)")
    if n_ell:
        i = entries.index(Ellipsis)
        entries[i : i + 1] = [builtins.slice(None)] * (rank + 1 - used)
    entries += [builtins.slice(None)] * (rank + 1 - used)
    first = entries[0]
    if not (isinstance(first, builtins.slice) and first == builtins.slice(None)):
        fail(op, f"index {first!r} on the batch axis (expected ':' there: x[:, ...])")
    return entries[1:]


def _get_item(fail: Fail, op: Any, x: Tensor, key: Any) -> Tensor:
    """``x[key]``: constant slices with step 1 (``slice``), ints (a slice, then the axis dropped), ``None``
    (a new axis of size 1) and ``...``; the batch axis is taken whole."""
    rank = len(x.shape)
    out, pos = x, 0  # pos: the per-example axis of x the next entry indexes
    drops: list[int] = []
    inserts: list[int] = []
    for e in _entries(fail, op, key, rank):
        n = x.shape[pos] if pos < rank else None
        if e is None:
            inserts.append(pos - len(drops) + len(inserts))
            continue
        if isinstance(e, builtins.slice):
            b = _bounds(fail, op, e, n, pos + 1)
            if b is not None:
                out = F.slice(out, b[0], b[1], axis=pos - rank)
        elif isinstance(e, (int, np.integer)) and not isinstance(e, bool):
            i = _index(fail, op, int(e), n, pos + 1)
            out = F.slice(out, i, i + 1, axis=pos - rank)
            drops.append(pos - rank)
        else:
            fail(op, f"index {e!r} (expected ints, slices a:b, None or '...': tensor and list indices are a gather)")
        pos += 1
    return _insert(_drop(out, drops), inserts)


def _split(fail: Fail, op: Any, x: Tensor) -> list[Tensor]:
    axis = _axis(fail, op, op.axis, len(x.shape))
    spec = op.indices_or_sections
    if isinstance(spec, (int, np.integer)) and not isinstance(spec, bool):
        return F.split(x, int(spec), axis=axis)
    n = x.shape[axis]
    if n is None:
        fail(op, "split points on an axis of unknown size (expected a known size, or a number of sections)")
    points = [0, *(int(i) for i in spec), n]
    sizes = [b - a for a, b in itertools.pairwise(points)]
    if any(s <= 0 for s in sizes):
        fail(op, f"split points {list(spec)} on an axis of size {n} (expected increasing points in (0, {n}))")
    return F.split(x, sizes, axis=axis)


def _implicit_output(terms: list[str]) -> str:
    letters = "".join(terms)
    return "".join(sorted(c for c in set(letters) if letters.count(c) == 1))


def _einsum(fail: Fail, op: Any, eq: str, operands: list[Any]) -> Tensor:
    eq = eq.replace(" ", "")
    if "." in eq:
        fail(op, f"einsum {eq!r} with '...' (expected every axis named, the batch first: 'bd,btd->bt')")
    lhs, _, rhs = eq.partition("->")
    terms = lhs.split(",")
    if "->" not in eq:
        rhs = _implicit_output(terms)
    if len(terms) != len(operands):
        fail(op, f"einsum {eq!r} for {len(operands)} operands")
    batch: set[str] = set()
    new_terms, args = [], []
    for term, a in zip(terms, operands):
        if isinstance(a, Tensor):
            batch.add(term[:1])
            new_terms.append(term[1:])
            args.append(a)
        else:  # a constant array: no batch axis
            arr = np.asarray(a, dtype="float32")
            new_terms.append(term)
            args.append(F.constant(arr, "float32"))
    if len(batch) != 1:
        fail(op, f"einsum {eq!r}: the operands' first (batch) letters differ (expected one batch letter)")
    b = batch.pop()
    if not rhs.startswith(b) or b in rhs[1:] or any(b in t for t in new_terms):
        fail(
            op,
            f"einsum {eq!r} mixes or reduces the batch axis {b!r} (expected it first in each tensor and in the output)",
        )
    return F.einsum(",".join(new_terms) + "->" + rhs[1:], *args)


def _matmul(fail: Fail, op: Any, a: Any, b: Any) -> Tensor:
    a = _tensor(fail, op, a)
    if not isinstance(b, Tensor):  # a constant matrix
        w = np.asarray(b, dtype="float32")
        if w.ndim != 2:
            fail(op, f"a constant operand of shape {w.shape} (expected a 2-D matrix)")
        return F.matmul(a, F.constant(w, "float32"))
    ra, rb = len(a.shape), len(b.shape)
    if ra != rb or ra < 2:
        fail(
            op,
            f"matmul of per-example ranks {ra} and {rb} (expected equal ranks >= 2, e.g. (batch, t, d) @ "
            "(batch, d, 1); or keras.ops.einsum with the batch letter first)",
        )
    lead = string.ascii_lowercase[: ra - 2]
    return F.einsum(f"{lead}ik,{lead}kj->{lead}ij", a, b)


def _reduce(fail: Fail, op: Any, kind: str, x: Tensor) -> Tensor:
    if getattr(op, "initial", None) is not None:
        fail(op, "initial= is set")
    axes = _axes(fail, op, op.axis, len(x.shape))
    keep = bool(op.keepdims)
    if kind == "Sum":
        return F.sum(x, axes, keepdims=keep)
    if kind == "Mean":
        return F.mean(x, axes, keepdims=keep)
    if kind == "Max":
        return F.max(x, axes, keepdims=keep)
    return F.min(x, axes, keepdims=keep)


def _expand_dims(fail: Fail, op: Any, x: Tensor) -> Tensor:
    seq = list(op.axis) if isinstance(op.axis, (list, tuple)) else [op.axis]
    out_rank = len(x.shape) + len(seq)  # per example
    positions = sorted({_axis(fail, op, a, out_rank) + out_rank for a in seq})
    return _insert(x, positions)


def _squeeze(fail: Fail, op: Any, x: Tensor) -> Tensor:
    rank = len(x.shape)
    if op.axis is None:
        axes = [i - rank for i, d in enumerate(x.shape) if d == 1]
    else:
        axes = _axes(fail, op, op.axis, rank)
        bad = [a for a in axes if x.shape[a] != 1]
        if bad:
            size = x.shape[bad[0]]
            fail(
                op,
                f"squeeze of axis {bad[0] + rank + 1} of {'unknown size' if size is None else f'size {size}'} "
                "(expected a size-1 axis; an axis of unknown size is made size 1 by slicing it, x[:, :1])",
            )
    return _drop(x, axes)


def _reshape(fail: Fail, op: Any, x: Tensor) -> Tensor:
    shape = list(op.newshape) if isinstance(op.newshape, (list, tuple)) else [op.newshape]
    if not shape or shape[0] not in (-1, None):
        fail(op, f"new shape {tuple(shape)} (expected the batch first as -1: keras.ops.reshape(x, (-1, ...)))")
    return F.reshape(x, [int(d) for d in shape[1:]])


def _transpose(fail: Fail, op: Any, x: Tensor) -> Tensor:
    rank = len(x.shape)
    axes = op.axes
    if axes is None or len(axes) != rank + 1:
        fail(op, f"axes {axes!r} (expected a permutation that keeps the batch first: (0, ...))")
    norm = [int(a) % (rank + 1) for a in axes]
    if norm[0] != 0:
        fail(op, f"axes {tuple(axes)} move the batch axis (expected (0, ...))")
    return F.transpose(x, [a - 1 for a in norm[1:]])


def translate_op(fail: Fail, op: Any, kind: str, args: list[Any]) -> Tensor | list[Tensor]:
    """The rshop value(s) of keras.ops operation ``op`` (class name ``kind``, one of :data:`OPS`) on ``args``."""
    if kind == "GetItem" and len(args) == 2:
        return _get_item(fail, op, _tensor(fail, op, args[0]), args[1])
    if kind == "Concatenate" and len(args) == 1 and isinstance(args[0], (list, tuple)):
        xs = [_tensor(fail, op, a) for a in args[0]]
        return F.concat(xs, axis=_axis(fail, op, op.axis, len(xs[0].shape)))
    if kind == "Einsum":
        return _einsum(fail, op, op.subscripts, args)
    if kind == "Matmul" and len(args) == 2:
        return _matmul(fail, op, args[0], args[1])
    if len(args) != 1:
        fail(op, f"{len(args)} positional arguments")
    x = _tensor(fail, op, args[0])
    if kind == "Split":
        return _split(fail, op, x)
    if kind in ("Sum", "Mean", "Max", "Min"):
        return _reduce(fail, op, kind, x)
    if kind == "ExpandDims":
        return _expand_dims(fail, op, x)
    if kind == "Squeeze":
        return _squeeze(fail, op, x)
    if kind == "Reshape":
        return _reshape(fail, op, x)
    if kind == "Transpose":
        return _transpose(fail, op, x)
    fail(op)


def dot_layer(fail: Fail, op: Any, a: Tensor, b: Tensor) -> Tensor:
    """Keras ``Dot(axes, normalize=False)`` on ``[a, b]``: contract one axis of each; the remaining axes of
    ``a``, then of ``b``; a per-example scalar result has shape (1,), as Keras' batch_dot gives."""
    if op.normalize:
        fail(op, "normalize=True (expected normalize=False; divide by keras.ops.sqrt(keras.ops.sum(x * x)) first)")
    axes = op.axes if isinstance(op.axes, (list, tuple)) else (op.axes, op.axes)
    ia = _axis(fail, op, axes[0], len(a.shape)) + len(a.shape)
    ib = _axis(fail, op, axes[1], len(b.shape)) + len(b.shape)
    letters = iter(string.ascii_lowercase)
    ta = [next(letters) for _ in a.shape]
    tb = [next(letters) for _ in b.shape]
    tb[ib] = ta[ia]
    out = [c for i, c in enumerate(ta) if i != ia] + [c for i, c in enumerate(tb) if i != ib]
    y = F.einsum(f"{''.join(ta)},{''.join(tb)}->{''.join(out)}", a, b)
    return F.reshape(y, [1]) if not out else y


def translate_cell(
    imp: Importer, fail: Fail, op: Any, kind: str, args: list[Any], kwargs: dict[str, Any]
) -> list[Tensor]:
    """A Keras ``SimpleRNNCell`` / ``GRUCell`` / ``LSTMCell`` called on ``(x, states)`` in the step: rshop's cell
    of that kind (one per Keras cell, whatever the number of calls), its outputs flattened as Keras numbers them:
    ``[output, *new_states]``."""
    import keras

    from .keras import cell_spec

    if set(kwargs) - {"training", "states"}:
        fail(op, f"call keywords {sorted(kwargs)}")
    call = list(args) + ([kwargs["states"]] if "states" in kwargs else [])
    if len(call) != 2:
        fail(op, "expected a call cell(x_t, states)")
    x = _tensor(fail, op, call[0], "input")
    states = [_tensor(fail, op, s, "state") for s in (call[1] if isinstance(call[1], (list, tuple)) else [call[1]])]
    spec = cell_spec(keras, op, CELLS[kind], f"from_keras_step, layer {kind} {op.name!r}")
    cell = imp.rshop_layer(op, lambda: spec.cell(_safe_name(op.name)))
    y, new = cell(x, states)
    return [y, *new]


def _safe_name(s: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9_\-]", "_", s) or "cell"
