"""Array hooks of the numpy engine (every engine has this module): numpy <-> engine arrays, the scope where
float64 arrays exist, and parameter gradients of a projected output. Public through
:func:`rshop_backends.to_native`, :func:`rshop_backends.to_numpy` and :mod:`rshop_backends.parity`."""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np

from rshop_core.errors import RshopNotImplementedError

GRADIENTS = False  # whether loss_grads gives gradients (the conformance suite and compare read it)


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
