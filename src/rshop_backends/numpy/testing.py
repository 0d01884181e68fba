"""Conformance-suite hooks of the numpy engine (every engine has this module)."""

from __future__ import annotations

import contextlib

import numpy as np

from rshop_core.errors import RshopNotImplementedError


def float64_scope():
    """Where float64 arrays can exist: everywhere on this engine."""
    return contextlib.nullcontext()


def to_native(a: np.ndarray, dtype: str):
    """A numpy array as this engine's array of ``dtype``."""
    return np.asarray(a, dtype=dtype)


def to_numpy(a) -> np.ndarray:
    return np.asarray(a)


def loss_grads(layer, x, weights_out, initial_state=None, constants=None, **call):
    """Gradients of ``sum(output * weights_out)`` w.r.t. every parameter (numpy has none)."""
    raise RshopNotImplementedError("engine 'numpy': expected gradients, received an inference-only engine.")
