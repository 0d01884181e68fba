"""Conformance-suite hooks of the tensorflow engine (every engine has this module)."""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from .arrays import GRADIENTS, float64_scope, loss_grads, to_native, to_numpy

__all__ = ["GRADIENTS", "float64_scope", "input_grads", "loss_grads", "to_native", "to_numpy"]


def input_grads(fn: Any, args: list[Any], weights_out: np.ndarray, wrt: list[int]) -> list[np.ndarray]:
    """Gradients of ``sum(fn(*args) * weights_out)`` w.r.t. ``args[i]`` for ``i`` in ``wrt``, as numpy arrays."""
    with tf.GradientTape() as tape:
        for i in wrt:
            tape.watch(args[i])
        y = fn(*args)
        loss = tf.reduce_sum(y * tf.constant(weights_out, dtype=y.dtype))
    grads = tape.gradient(loss, [args[i] for i in wrt])
    return [np.zeros(tuple(args[i].shape)) if g is None else np.asarray(g) for i, g in zip(wrt, grads)]
