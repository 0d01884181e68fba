"""Array hooks of the jax engine (every engine has this module): numpy <-> engine arrays, the scope where
float64 arrays exist, and parameter gradients of a projected output. Public through
:func:`rshop_backends.to_native`, :func:`rshop_backends.to_numpy` and :mod:`rshop_backends.parity`."""

from __future__ import annotations

import contextlib
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

GRADIENTS = True  # whether loss_grads gives gradients (the conformance suite and compare read it)


def float64_scope() -> contextlib.AbstractContextManager[Any]:
    """Where float64 arrays can exist: jax makes them only with 64-bit mode on (never set globally)."""
    return jax.enable_x64(True)


def to_native(a: np.ndarray, dtype: str) -> Any:
    return jnp.asarray(np.asarray(a, dtype=dtype))


def to_numpy(a: Any) -> np.ndarray:
    return np.asarray(a)


def loss_grads(
    layer: Any, x: Any, weights_out: Any, initial_state: Any = None, constants: Any = None, **call: Any
) -> dict[str, np.ndarray]:
    """Gradients of ``sum(output * weights_out)`` w.r.t. every parameter, as numpy arrays."""
    w = jnp.asarray(weights_out)

    def loss(params: Any) -> Any:
        y = layer.apply(params, x, initial_state=initial_state, constants=constants, **call)
        y = y[0] if isinstance(y, tuple) else y
        return jnp.sum(y * w)

    return {k: np.asarray(v) for k, v in jax.grad(loss)(layer.params).items()}
