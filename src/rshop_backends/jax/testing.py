"""Conformance-suite hooks of the jax engine (every engine has this module)."""

from __future__ import annotations

import contextlib
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


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


def input_grads(fn: Any, args: list[Any], weights_out: np.ndarray, wrt: list[int]) -> list[np.ndarray]:
    """Gradients of ``sum(fn(*args) * weights_out)`` w.r.t. ``args[i]`` for ``i`` in ``wrt``, as numpy arrays."""

    def loss(*a: Any) -> Any:
        y = fn(*a)
        return jnp.sum(y * jnp.asarray(weights_out, dtype=y.dtype))

    return [np.asarray(g) for g in jax.grad(loss, argnums=tuple(wrt))(*args)]
