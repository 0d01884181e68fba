"""Conformance-suite hooks of the jax engine (every engine has this module)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .arrays import GRADIENTS, float64_scope, loss_grads, to_native, to_numpy

__all__ = ["GRADIENTS", "float64_scope", "input_grads", "loss_grads", "to_native", "to_numpy"]


def input_grads(fn: Any, args: list[Any], weights_out: np.ndarray, wrt: list[int]) -> list[np.ndarray]:
    """Gradients of ``sum(fn(*args) * weights_out)`` w.r.t. ``args[i]`` for ``i`` in ``wrt``, as numpy arrays."""

    def loss(*a: Any) -> Any:
        y = fn(*a)
        return jnp.sum(y * jnp.asarray(weights_out, dtype=y.dtype))

    return [np.asarray(g) for g in jax.grad(loss, argnums=tuple(wrt))(*args)]
