"""The registry of custom ops, as far as the IR needs it (:mod:`rshop_core.custom_ops` is the frontend).

The ``custom`` op's type rule (:data:`rshop_core.ops.OPS`) finds the op a node names here, checks its
attributes as JSON data and applies the op's type rule. An unregistered name raises
:class:`~rshop_core.errors.RshopFormatError`: that is what loading a file naming it meets.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from .errors import RshopConfigError, RshopError, RshopFormatError, RshopShapeError
from .types import TensorType

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+")
MAX_ATTRS = 15  # a node holds at most 16 attributes, one of them "op"
MAX_ATTR_DEPTH = 8


class Registered(Protocol):
    """What the IR reads of a registered op (a :class:`rshop_core.custom_ops.CustomOp`)."""

    @property
    def name(self) -> str: ...
    @property
    def infer(self) -> Callable[..., TensorType] | None: ...
    @property
    def composition(self) -> Callable[..., Any] | None: ...


_REGISTRY: dict[str, Any] = {}


def get(name: object, where: str) -> Any:
    """The op registered as ``name``, or :class:`RshopFormatError` (what a file naming it needs)."""
    op = _REGISTRY.get(name) if isinstance(name, str) else None
    if op is None:
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise RshopFormatError(
                f"{where}: expected a custom op name '<library>.<op>', received {name!r:.80}. Files name ops; "
                "they never name modules or code to run."
            )
        raise RshopFormatError(
            f"{where}: expected a custom op registered in this process, received {name!r}, which is not. "
            f"Import the code that calls rshop_core.register_op({name!r}, ...) before building or loading "
            "this model; nothing in a file is imported or run."
        )
    return op


def canonical_attrs(attrs: Mapping[str, Any], where: str, cls: type[RshopError]) -> dict[str, Any]:
    """``attrs`` checked as JSON data (scalars and lists of them) under identifier keys, tuples made lists."""
    if len(attrs) > MAX_ATTRS:
        raise cls(f"{where}: expected at most {MAX_ATTRS} attributes, received {len(attrs)}.")
    out: dict[str, Any] = {}
    for key, value in attrs.items():
        if not isinstance(key, str) or not key.isidentifier() or key in ("op", "name"):
            raise cls(
                f"{where}: expected attribute names that are Python identifiers other than 'op' and 'name', "
                f"received {key!r:.40}."
            )
        out[key] = _json_data(value, f"{where}, attribute {key!r}", cls, 0)
    return out


def _json_data(v: object, where: str, cls: type[RshopError], depth: int) -> Any:
    if depth > MAX_ATTR_DEPTH:
        raise cls(f"{where}: expected lists nested at most {MAX_ATTR_DEPTH} deep.")
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, float):
        if not math.isfinite(v):
            raise cls(f"{where}: expected finite numbers, received {v!r}.")
        return v
    if isinstance(v, (list, tuple)):
        return [_json_data(x, where, cls, depth + 1) for x in v]
    raise cls(
        f"{where}: expected JSON data (None, bool, int, float, str and lists of them), received "
        f"{type(v).__name__}. Attributes are saved in files; pass arrays as inputs or parameters."
    )


def _checked_infer(op: Registered, types: list[TensorType], attrs: dict[str, Any], where: str) -> TensorType:
    assert op.infer is not None
    try:
        out = op.infer(list(types), dict(attrs))
    except RshopError as e:
        msg = str(e)
        raise type(e)(msg if msg.startswith(where) else f"{where}: {msg}") from None
    except (ValueError, TypeError, IndexError, KeyError, ArithmeticError) as e:
        raise RshopShapeError(
            f"{where}: expected inputs the type rule of custom op {op.name!r} accepts, received "
            f"{', '.join(t.describe() for t in types)} ({type(e).__name__}: {str(e)[:200]})."
        ) from None
    if not isinstance(out, TensorType):
        raise RshopConfigError(
            f"{where}: expected the type rule of custom op {op.name!r} to return a TensorType, received "
            f"{type(out).__name__}."
        )
    batched = any(t.batched for t in types)
    if out.batched != batched:
        raise RshopShapeError(
            f"{where}: expected the type rule of custom op {op.name!r} to return a "
            f"{'batched' if batched else 'unbatched'} type (as its inputs are), received {out.describe()}."
        )
    return out


def infer_custom(where: str, types: list[TensorType], attrs: dict[str, Any]) -> tuple[TensorType, dict[str, Any]]:
    """The ``custom`` op's rule (:data:`rshop_core.ops.OPS`): find the registered op its ``op`` attribute
    names and apply its type rule. An unregistered name raises :class:`RshopFormatError`."""
    rest = dict(attrs)
    op = get(rest.pop("op", None), where)
    if op.composition is not None:
        raise RshopFormatError(
            f"{where}: expected a custom op with engine implementations, received {op.name!r}, a composition. "
            "A composition is stored as the built-in ops it expands to; call the op to inline it."
        )
    rest = canonical_attrs(rest, where, RshopConfigError)
    return _checked_infer(op, types, rest, where), {"op": op.name, **rest}
