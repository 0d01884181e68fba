"""Conformance-suite hooks of the numpy engine (every engine has this module)."""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np

from rshop_core.errors import RshopNotImplementedError

# inference only: the conformance suite's gradient tests (``trainable_engine``) leave this engine out
GRADIENTS = False


def float64_scope() -> contextlib.AbstractContextManager[Any]:
    """Where float64 arrays can exist: everywhere on this engine."""
    return contextlib.nullcontext()


def to_native(a: np.ndarray, dtype: str) -> np.ndarray:
    """A numpy array as this engine's array of ``dtype``."""
    return np.asarray(a, dtype=dtype)


def to_numpy(a: Any) -> np.ndarray:
    """An engine array as numpy."""
    return np.asarray(a)


def loss_grads(
    layer: Any, x: Any, weights_out: Any, initial_state: Any = None, constants: Any = None, **call: Any
) -> dict[str, np.ndarray]:
    """Gradients of ``sum(output * weights_out)`` w.r.t. every parameter (numpy has none)."""
    raise RshopNotImplementedError("engine 'numpy': expected gradients, received an inference-only engine.")


def input_grads(fn: Any, args: list[Any], weights_out: np.ndarray, wrt: list[int]) -> list[np.ndarray]:
    """Gradients of ``sum(fn(*args) * weights_out)`` w.r.t. ``args[i]`` for ``i`` in ``wrt`` (numpy has none)."""
    raise RshopNotImplementedError("engine 'numpy': expected gradients, received an inference-only engine.")
