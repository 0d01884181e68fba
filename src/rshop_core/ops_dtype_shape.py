"""The type rules of the cast, shape and index ops of the closed set (``cast``, ``expand_dims``,
``squeeze``, ``min``, ``argmax``, ``logsumexp``, ``cumsum``, ``gather``).

They are part of :data:`rshop_core.ops.OPS` (which imports :data:`RULES` from here); the op table
is in the docstring of :mod:`rshop_core.ops`. Every axis attribute is stored negative, per example.
"""

from __future__ import annotations

from .dtypes import DTYPES
from .errors import RshopConfigError, RshopDTypeError
from .ops import Op, OpDef, _fail, _norm_axis, _reduce, _require_float
from .types import TensorType

__all__ = ["RULES"]


def _flag(where: str, attrs: dict, key: str) -> bool:
    value = attrs.get(key, False)
    if not isinstance(value, bool):
        _fail(where, f"{key} as True or False", repr(value), cls=RshopConfigError)
    return value


def _cast(where: str, types: list[TensorType], attrs: dict) -> tuple[TensorType, dict]:
    t = types[0]
    dtype = attrs.get("dtype")
    if not isinstance(dtype, str) or dtype not in DTYPES:
        _fail(where, f"a dtype in {list(DTYPES)}", repr(dtype), cls=RshopDTypeError)
    return TensorType(t.shape, dtype, t.batched), {"dtype": dtype}


def _expand_dims(where: str, types: list[TensorType], attrs: dict) -> tuple[TensorType, dict]:
    t = types[0]
    axis = _norm_axis(where, attrs.get("axis", -1), t.rank + 1)  # an axis of the result
    shape = list(t.shape)
    shape.insert(t.rank + 1 + axis, 1)
    return TensorType(tuple(shape), t.dtype, t.batched), {"axis": axis}


def _squeeze(where: str, types: list[TensorType], attrs: dict) -> tuple[TensorType, dict]:
    t = types[0]
    axes = attrs.get("axes")
    if isinstance(axes, int):
        axes = [axes]
    if not isinstance(axes, list) or not axes:
        _fail(
            where,
            "the axes to remove (an int or a non-empty list)",
            repr(axes),
            "Name them: an axis of unknown size at build time must not vanish at call time.",
            RshopConfigError,
        )
    norm = sorted({_norm_axis(where, a, t.rank) for a in axes})
    for a in norm:
        if t.shape[a] != 1:
            _fail(where, f"axis {a} of size 1", t.describe())
    shape = tuple(d for i, d in enumerate(t.shape) if i - t.rank not in norm)
    return TensorType(shape, t.dtype, t.batched), {"axes": norm}


def _numeric(where: str, t: TensorType) -> None:
    if t.dtype == "bool":
        _fail(
            where, "a numeric operand (float32, float64 or int32)", t.describe(), "Cast it first.", RshopDTypeError
        )


def _min(where: str, types: list[TensorType], attrs: dict) -> tuple[TensorType, dict]:
    _numeric(where, types[0])
    return _reduce(where, types, attrs)


def _logsumexp(where: str, types: list[TensorType], attrs: dict) -> tuple[TensorType, dict]:
    _require_float(where, types[0])
    return _reduce(where, types, attrs)


def _argmax(where: str, types: list[TensorType], attrs: dict) -> tuple[TensorType, dict]:
    t = types[0]
    _numeric(where, t)
    if t.rank == 0:
        _fail(where, "a value of per-example rank >= 1", t.describe())
    axis = _norm_axis(where, attrs.get("axis", -1), t.rank)
    keep = _flag(where, attrs, "keepdims")
    shape = [1 if i - t.rank == axis else d for i, d in enumerate(t.shape)]
    if not keep:
        del shape[t.rank + axis]
    return TensorType(tuple(shape), "int32", t.batched), {"axis": axis, "keepdims": keep}


def _cumsum(where: str, types: list[TensorType], attrs: dict) -> tuple[TensorType, dict]:
    t = types[0]
    _numeric(where, t)
    if t.rank == 0:
        _fail(where, "a value of per-example rank >= 1", t.describe())
    axis = _norm_axis(where, attrs.get("axis", -1), t.rank)
    reverse, exclusive = _flag(where, attrs, "reverse"), _flag(where, attrs, "exclusive")
    return t, {"axis": axis, "reverse": reverse, "exclusive": exclusive}


def _gather(where: str, types: list[TensorType], attrs: dict) -> tuple[TensorType, dict]:
    x, idx = types
    if idx.dtype != "int32":
        _fail(
            where,
            "int32 indices",
            idx.describe(),
            "Make them int32: argmax gives int32, cast(x, 'int32') converts floats.",
            RshopDTypeError,
        )
    if x.rank == 0:
        _fail(where, "a value of per-example rank >= 1 to gather from", x.describe())
    axis = _norm_axis(where, attrs.get("axis", 0), x.rank)
    pos = x.rank + axis
    shape = x.shape[:pos] + idx.shape + x.shape[pos + 1 :]
    return TensorType(shape, x.dtype, x.batched or idx.batched), {"axis": axis}


RULES: dict[str, OpDef] = {
    Op.CAST: OpDef(Op.CAST, (1, 1), _cast),
    Op.EXPAND_DIMS: OpDef(Op.EXPAND_DIMS, (1, 1), _expand_dims),
    Op.SQUEEZE: OpDef(Op.SQUEEZE, (1, 1), _squeeze),
    Op.MIN: OpDef(Op.MIN, (1, 1), _min),
    Op.ARGMAX: OpDef(Op.ARGMAX, (1, 1), _argmax),
    Op.LOGSUMEXP: OpDef(Op.LOGSUMEXP, (1, 1), _logsumexp),
    Op.CUMSUM: OpDef(Op.CUMSUM, (1, 1), _cumsum),
    Op.GATHER: OpDef(Op.GATHER, (2, 2), _gather),
}
