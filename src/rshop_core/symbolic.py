"""Symbolic tensors: what the functional frontend builds a step graph from.

A :class:`Tensor` is a node under construction: an op, its input tensors, JSON
attributes and a static :class:`~rshop_core.types.TensorType`. Every application
is type-checked at once, so a shape error surfaces on the line that caused it.
:func:`rshop_core.tracing.trace` later turns the tensors reachable from a model's
outputs into a topologically ordered SSA graph.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from .dtypes import DEFAULT_FLOAT, check_dtype
from .errors import RshopConfigError
from .limits import check_name
from .ops import Op, infer_type
from .types import Shape, TensorType, check_shape

if TYPE_CHECKING:
    from .layers.base import Layer

ParamRef = tuple["Layer | None", str, dict[str, Any]]
"""A parameter tensor's origin: (owning layer, or None once qualified; its local or qualified name; its spec)."""

__all__ = ["Tensor", "Input", "apply", "as_tensor"]

_ids = itertools.count()


class Tensor:
    """A symbolic value of a step graph. Supports ``+ - * / @``, unary ``-`` and comparisons."""

    __slots__ = ("op", "inputs", "attrs", "type", "name", "param", "uid", "batch", "__weakref__")

    op: str
    inputs: tuple[Tensor, ...]
    attrs: dict[str, Any]
    type: TensorType
    name: str
    param: ParamRef | None
    uid: int
    batch: int | None  # an Input's fixed batch size (Input(batch_shape=...)); None: any batch

    def __init__(
        self,
        op: str,
        inputs: Iterable[Tensor],
        attrs: dict[str, Any],
        type_: TensorType,
        name: str,
        param: ParamRef | None = None,
    ) -> None:
        self.op, self.inputs, self.attrs, self.type = op, tuple(inputs), attrs, type_
        self.name, self.param, self.uid = name, param, next(_ids)
        self.batch = None

    @property
    def shape(self) -> Shape:
        """Per-example shape (the batch axis is implicit)."""
        return self.type.shape

    @property
    def dtype(self) -> str:
        return self.type.dtype

    def __repr__(self) -> str:
        return f"<rshop Tensor {self.name!r} op={self.op} {self.type.describe()}>"

    # Arithmetic sugar: each maps to one op of the closed set.
    def __add__(self, o: object) -> Tensor:
        return apply(Op.ADD, [self, as_tensor(o, self)])

    def __radd__(self, o: object) -> Tensor:
        return apply(Op.ADD, [as_tensor(o, self), self])

    def __sub__(self, o: object) -> Tensor:
        return apply(Op.SUBTRACT, [self, as_tensor(o, self)])

    def __rsub__(self, o: object) -> Tensor:
        return apply(Op.SUBTRACT, [as_tensor(o, self), self])

    def __mul__(self, o: object) -> Tensor:
        return apply(Op.MULTIPLY, [self, as_tensor(o, self)])

    def __rmul__(self, o: object) -> Tensor:
        return apply(Op.MULTIPLY, [as_tensor(o, self), self])

    def __truediv__(self, o: object) -> Tensor:
        return apply(Op.DIVIDE, [self, as_tensor(o, self)])

    def __rtruediv__(self, o: object) -> Tensor:
        return apply(Op.DIVIDE, [as_tensor(o, self), self])

    def __matmul__(self, o: object) -> Tensor:
        return apply(Op.MATMUL, [self, o])

    def __neg__(self) -> Tensor:
        return apply(Op.NEGATIVE, [self])

    def __gt__(self, o: object) -> Tensor:
        return apply(Op.GREATER, [self, as_tensor(o, self)])

    def __ge__(self, o: object) -> Tensor:
        return apply(Op.GREATER_EQUAL, [self, as_tensor(o, self)])

    def __lt__(self, o: object) -> Tensor:
        return apply(Op.LESS, [self, as_tensor(o, self)])

    def __le__(self, o: object) -> Tensor:
        return apply(Op.LESS_EQUAL, [self, as_tensor(o, self)])

    __hash__ = object.__hash__

    def __bool__(self) -> bool:
        raise RshopConfigError(
            f"{self.name}: expected a concrete value in a Python condition, received a symbolic "
            "Tensor. Use rshop_core.functional.where for data-dependent choices."
        )


def Input(
    shape: object = None,
    dtype: str = DEFAULT_FLOAT,
    name: str | None = None,
    *,
    batch_shape: object = None,
    batch_size: object = None,
) -> Tensor:
    """A per-step input of a step model: ``shape`` is per example (no batch axis).

    ``batch_shape=(B, *shape)`` (RecurrentShop's and Keras' form) or ``batch_size=B`` fix the batch:
    the step graph stays per example, and a model with ``stateful=True`` takes ``B`` as its
    ``batch_size`` (a different ``batch_size=`` is refused); other models run any batch.
    """
    where = f"Input {name or ''}".strip()
    if name is not None:
        check_name(name, "Input", "name")
    shape, batch = _shape_and_batch(where, shape, batch_shape, batch_size)
    if shape is None:
        raise RshopConfigError(f"{where}: expected shape= (per example) or batch_shape=, received neither.")
    shape = check_shape(shape, where, allow_none=True)
    dtype = check_dtype(dtype, where)
    t = Tensor(Op.INPUT, (), {}, TensorType(shape, dtype, True), name or "input")
    t.batch = batch
    if name is None:
        t.name = f"input_{t.uid}"
    return t


def _shape_and_batch(where: str, shape: object, batch_shape: object, batch_size: object) -> tuple[object, int | None]:
    """An Input's per-example shape and the batch size it fixes (None: any), after checking that
    ``shape``, ``batch_shape`` and ``batch_size`` agree."""
    batch: int | None = None
    if batch_shape is not None:
        if not isinstance(batch_shape, (list, tuple)) or not batch_shape:
            raise RshopConfigError(
                f"{where}, batch_shape: expected a tuple (batch, *per-example shape), received {batch_shape!r}."
            )
        if shape is not None and (not isinstance(shape, (list, tuple)) or tuple(shape) != tuple(batch_shape)[1:]):
            raise RshopConfigError(
                f"{where}: expected shape equal to batch_shape without its first (batch) axis, received shape="
                f"{shape!r} and batch_shape={batch_shape!r}. Give one of them."
            )
        batch, shape = _batch_dim(where, "batch_shape[0]", batch_shape[0]), tuple(batch_shape)[1:]
    if batch_size is not None:
        size = _batch_dim(where, "batch_size", batch_size)
        if batch is not None and size != batch:
            raise RshopConfigError(
                f"{where}: expected batch_size equal to batch_shape[0] ({batch}), received batch_size={size}."
            )
        batch = size
    return shape, batch


def _batch_dim(where: str, what: str, v: object) -> int | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise RshopConfigError(f"{where}, {what}: expected a batch size >= 1 or None, received {v!r}.")
    return int(v)


def as_tensor(value: object, like: Tensor | None = None) -> Tensor:
    """``value`` if it is a Tensor; otherwise a ``constant`` node: of ``like``'s dtype (a bool only when
    ``value`` is bool too), else of a bool or int32 array's own dtype, else float32."""
    if isinstance(value, Tensor):
        return value
    given = value.dtype.name if isinstance(value, np.ndarray) else np.asarray(value).dtype.name
    if like is not None and (like.dtype != "bool" or given == "bool"):
        dtype = like.dtype  # a literal takes its partner's dtype (a bool only next to a bool)
    elif like is None and given in ("bool", "int32"):
        dtype = given  # a bool or int32 numpy array keeps its dtype
    else:
        dtype = DEFAULT_FLOAT
    if dtype == "int32" and np.asarray(value).dtype.kind not in "biu":
        raise RshopConfigError(
            f"constant: expected integers next to an int32 value, received {value!r}. rshop never casts silently."
        )
    arr = np.asarray(value, dtype=dtype)
    if not np.all(np.isfinite(arr)):
        raise RshopConfigError(f"constant: expected finite numbers, received {value!r}.")
    return Tensor(
        Op.CONSTANT, (), {"value": arr.tolist(), "dtype": dtype}, TensorType(arr.shape, dtype, False), "constant"
    )


def apply(op: str, inputs: Iterable[object], attrs: dict[str, Any] | None = None, name: str | None = None) -> Tensor:
    """Apply ``op`` to symbolic ``inputs``; type-checks at once."""
    if name is not None:
        check_name(name, f"node of op {op}", "name")
    tensors: list[Tensor] = []
    for i, t in enumerate(inputs):
        if not isinstance(t, Tensor):
            raise RshopConfigError(
                f"{name or op}: expected rshop Tensors as inputs, received {type(t).__name__} at "
                f"position {i}. Build step graphs from rshop_core.Input and layers."
            )
        tensors.append(t)
    where = f"node {name or op!r} (op {op})"
    type_, attrs = infer_type(op, [t.type for t in tensors], attrs or {}, where)
    return Tensor(op, tensors, attrs, type_, name or op)
