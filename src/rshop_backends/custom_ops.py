"""How a generated step calls a registered custom op (:mod:`rshop_core.custom_ops`).

:func:`bind` turns one ``custom`` node into the function the step's line ``v7 = _op7(v3, v5)`` calls:
the op's implementation for the engine with the node's attributes as keywords, its output cut off
from the gradient when the op was registered ``differentiable=False``.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from typing import Any

from rshop_core import custom_ops
from rshop_core.errors import RshopNotImplementedError
from rshop_core.graph import Node


def bind(node: Node, engine: str) -> Callable[..., Any]:
    """The callable of ``node`` (a ``custom`` node) on ``engine``; raises naming the op and the engine."""
    where = f"node %{node.id} {node.name!r} (custom op {node.attrs.get('op')!r})"
    op = custom_ops.get(node.attrs.get("op"), where)
    fn = functools.partial(op.implementation(engine, where), **custom_ops.attrs_of(node.attrs))
    if op.differentiable:
        return fn
    try:
        stop = importlib.import_module(f"rshop_backends.{engine}.parallel").stop_gradient
    except (ImportError, AttributeError):
        raise RshopNotImplementedError(
            f"{where}: engine {engine!r}: expected a stop_gradient for an op registered differentiable=False, "
            "received none."
        ) from None

    def undifferentiated(*args: Any) -> Any:
        return stop(fn(*args))

    return undifferentiated
