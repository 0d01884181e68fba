"""What :func:`~rshop_core.convert.keras_step.from_keras_step` translates to the ops of issue 12: casts,
comparisons and ``where`` on bool masks and int32 ids, ``take`` / ``take_along_axis`` as ``gather``, ``argmax``,
``logsumexp``, ``cumsum``, ``clip``, ``elu``, and the activation layers ``LeakyReLU``, ``ELU`` and ``ReLU``.

Each form maps to one op of the closed set that computes what Keras computes (``not_equal`` and the logical
ops are a ``where`` on bool literals), or is refused with the reason. Keras axes count the batch; rshop's
never do (``keras_step_ops`` converts them). keras is imported only by the caller.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from .. import functional as F
from ..functional import BinaryOp
from ..symbolic import Tensor
from .keras_step_ops import Fail, _axes, _axis, _tensor

__all__ = ["OPS", "LAYERS", "translate_op", "translate_layer", "DTYPES"]

_COMPARE: dict[str, BinaryOp] = {
    "Greater": F.greater,
    "GreaterEqual": F.greater_equal,
    "Less": F.less,
    "LessEqual": F.less_equal,
    "Equal": F.equal,
}
# the keras.ops operations (by class name) translated here
OPS = (
    "Cast",
    "Where",
    *_COMPARE,
    "NotEqual",
    "LogicalAnd",
    "LogicalOr",
    "LogicalNot",
    "Argmax",
    "Logsumexp",
    "Cumsum",
    "Clip",
    "Take",
    "TakeAlongAxis",
    "Elu",
)
# the Keras layers (by class name) translated here
LAYERS = ("LeakyReLU", "ELU")
DTYPES = ("float32", "int32", "bool")
"""The Keras dtypes a step's values (Inputs, casts) may have: rshop's, less float64 (a lowering's choice)."""


def _literal(fail: Fail, op: Any, a: Any) -> Tensor | bool | int | float:
    """A step tensor, or a Python / numpy scalar kept as bool, int or float (its partner gives it a dtype)."""
    if isinstance(a, Tensor):
        return a
    if isinstance(a, (bool, np.bool_)):
        return bool(a)
    if isinstance(a, numbers.Integral):
        return int(a)
    if isinstance(a, numbers.Real):
        return float(a)
    fail(op, f"argument {a!r} (expected a tensor of the step or a number)")


def _bool(fail: Fail, op: Any, a: Any, what: str) -> Tensor:
    t = _tensor(fail, op, a, what)
    if t.dtype != "bool":
        fail(
            op,
            f"{what} of dtype {t.dtype} (expected a bool tensor: a comparison such as keras.ops.greater(x, 0), "
            "or keras.ops.cast(x, 'bool'))",
        )
    return t


def _where(fail: Fail, op: Any, args: list[Any]) -> Tensor:
    if len(args) != 3 or args[1] is None or args[2] is None:
        fail(op, "keras.ops.where(condition) without x1 and x2 (expected where(condition, x1, x2))")
    cond = _bool(fail, op, args[0], "condition")
    return F.where(cond, _literal(fail, op, args[1]), _literal(fail, op, args[2]))


def _logical(fail: Fail, op: Any, kind: str, args: list[Any]) -> Tensor:
    if kind == "LogicalNot":
        return F.where(_bool(fail, op, args[0], "argument"), False, True)
    a = _bool(fail, op, args[0], "first argument")
    b = args[1] if isinstance(args[1], (bool, np.bool_)) else _bool(fail, op, args[1], "second argument")
    if kind == "LogicalAnd":
        return F.where(a, b, False)
    return F.where(a, True, b)  # LogicalOr


def _take(fail: Fail, op: Any, x: Any, indices: Any) -> Tensor:
    """``keras.ops.take``: constant indices along a per-example axis of a step tensor; or step ids into a
    constant table along its axis 0 (an embedding lookup)."""
    if op.axis is None:
        fail(op, "axis=None flattens the batch too (expected a per-example axis, e.g. axis=1)")
    if isinstance(x, Tensor):
        if isinstance(indices, Tensor):
            fail(
                op,
                "indices that are a tensor of the step: keras.ops.take picks them from every example of the "
                "batch (expected keras.ops.take_along_axis(x, ids, axis=-1) for per-example ids, or constant indices)",
            )
        axis = _axis(fail, op, op.axis, len(x.shape))
        arr = np.asarray(indices)
        if arr.dtype.kind not in "iu":
            fail(op, f"indices {indices!r} (expected ints)")
        n = x.shape[axis]
        if (arr < 0).any():
            if n is None:
                fail(op, f"a negative index on axis {op.axis}, whose size is unknown (expected indices >= 0)")
            arr = np.where(arr < 0, arr + n, arr)  # numpy's convention, as Keras'
        return F.gather(x, arr, axis=axis)
    ids = _tensor(fail, op, indices, "indices")
    table = np.asarray(x)
    if table.dtype.kind not in "fiu" or table.ndim == 0:
        fail(op, f"a table of dtype {table.dtype} and shape {table.shape} (expected a numeric array)")
    if int(op.axis) not in (0, -table.ndim):
        fail(op, f"axis {op.axis} of a constant table (expected axis=0: the rows the step's ids pick)")
    dtype = "float32" if table.dtype.kind == "f" else "int32"
    return F.gather(F.constant(table, dtype), ids, axis=0)


def _take_along_axis(fail: Fail, op: Any, x: Any, indices: Any) -> Tensor:
    x = _tensor(fail, op, x)
    ids = _tensor(fail, op, indices, "indices")
    if len(x.shape) != 1 or len(ids.shape) != 1 or not ids.type.batched:
        fail(
            op,
            f"per-example ranks {len(x.shape)} and {len(ids.shape)} (expected a value (batch, n) and per-example "
            "ids (batch, k): then it is gather; for more axes, reshape to (batch, n) first)",
        )
    _axis(fail, op, op.axis, 1)
    return F.gather(x, ids, axis=-1)


def translate_op(fail: Fail, op: Any, kind: str, args: list[Any]) -> Tensor:
    """The rshop value of keras.ops operation ``op`` (class name ``kind``, one of :data:`OPS`) on ``args``."""
    if kind == "Where":
        return _where(fail, op, args)
    n_args = {"Take": 2, "TakeAlongAxis": 2, **dict.fromkeys((*_COMPARE, "NotEqual", "LogicalAnd", "LogicalOr"), 2)}
    if len(args) != n_args.get(kind, 1):
        fail(op, f"{len(args)} positional arguments")
    if kind in _COMPARE or kind == "NotEqual":
        a, b = (_literal(fail, op, v) for v in args)
        if not isinstance(a, Tensor) and not isinstance(b, Tensor):
            fail(op, "two numbers (expected a tensor of the step)")
        if kind == "NotEqual":
            return F.where(F.equal(a, b), False, True)
        return _COMPARE[kind](a, b)
    if kind.startswith("Logical"):
        return _logical(fail, op, kind, args)
    if kind == "Take":
        return _take(fail, op, args[0], args[1])
    if kind == "TakeAlongAxis":
        return _take_along_axis(fail, op, args[0], args[1])
    x = _tensor(fail, op, args[0])
    rank = len(x.shape)
    if kind == "Cast":
        if op.dtype not in DTYPES:
            fail(op, f"dtype {op.dtype!r} (expected one of {', '.join(DTYPES)})")
        return F.cast(x, op.dtype)
    if kind == "Argmax":
        if op.axis is None:
            fail(op, "axis=None flattens the batch too (expected a per-example axis, e.g. axis=-1)")
        return F.argmax(x, _axis(fail, op, op.axis, rank), keepdims=bool(op.keepdims))
    if kind == "Logsumexp":
        return F.logsumexp(x, _axes(fail, op, op.axis, rank), keepdims=bool(op.keepdims))
    if kind == "Cumsum":
        if op.axis is None:
            fail(op, "axis=None flattens the batch too (expected a per-example axis, e.g. axis=-1)")
        if op.dtype is not None and op.dtype != x.dtype:
            fail(op, f"dtype={op.dtype!r} (expected None; cast with keras.ops.cast first)")
        return F.cumsum(x, _axis(fail, op, op.axis, rank))
    if kind == "Clip":
        lo, hi = op.x_min, op.x_max
        if not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in (lo, hi)):
            fail(op, f"bounds {lo!r}, {hi!r} (expected two numbers)")
        return F.clip(x, float(lo), float(hi))
    if kind == "Elu":
        return _elu(fail, op, x)
    fail(op)


def _elu(fail: Fail, op: Any, x: Tensor) -> Tensor:
    if float(op.alpha) != 1.0:
        fail(
            op,
            f"alpha={op.alpha} (expected alpha=1.0, rshop's elu; for another alpha write "
            "keras.ops.where(x > 0, x, alpha * (keras.ops.exp(x) - 1.0)))",
        )
    return F.elu(x)


def translate_layer(fail: Fail, op: Any, kind: str, x: Tensor) -> Tensor:
    """The rshop value of Keras activation layer ``op`` (``LeakyReLU``, ``ELU`` or ``ReLU``) on ``x``."""
    if kind == "LeakyReLU":
        return F.leaky_relu(x, negative_slope=float(op.negative_slope))
    if kind == "ELU":
        return _elu(fail, op, x)
    slope, threshold, top = float(op.negative_slope), float(op.threshold), op.max_value
    if slope == 0.0 and threshold == 0.0 and top is None:
        return F.relu(x)
    if slope == 0.0 and threshold == 0.0 and float(top) == 6.0:
        return F.relu6(x)
    fail(
        op,
        f"max_value={top}, negative_slope={slope:g}, threshold={threshold:g} (expected ReLU() or "
        "ReLU(max_value=6): relu6; for a slope use LeakyReLU(negative_slope), for other bounds keras.ops.clip)",
    )
