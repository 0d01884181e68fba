"""Conformance-suite hooks of the tensorflow engine (every engine has this module)."""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import tensorflow as tf


def float64_scope() -> contextlib.AbstractContextManager[Any]:
    """Where float64 arrays can exist: everywhere on this engine."""
    return contextlib.nullcontext()


def to_native(a: np.ndarray, dtype: str) -> Any:
    return tf.constant(np.asarray(a, dtype=dtype))


def to_numpy(a: Any) -> np.ndarray:
    return np.asarray(a)


def loss_grads(
    layer: Any, x: Any, weights_out: Any, initial_state: Any = None, constants: Any = None, **call: Any
) -> dict[str, np.ndarray]:
    """Gradients of ``sum(output * weights_out)`` w.r.t. every parameter, as numpy arrays.

    The tape watches what tensorflow trains (``trainable=True`` variables); a frozen variable is not
    watched, so its gradient comes back as zeros. Every parameter is listed, so a test can see that.
    """
    names = list(layer.variables_by_name)
    variables = [layer.variables_by_name[k] for k in names]
    with tf.GradientTape() as tape:
        y = layer(x, initial_state=initial_state, constants=constants, **call)
        y = y[0] if isinstance(y, tuple) else y
        loss = tf.reduce_sum(y * tf.constant(weights_out, dtype=y.dtype))
    grads = tape.gradient(loss, variables)
    return {  # a gather's gradient is tf.IndexedSlices (an embedding's rows): made dense here
        k: (np.zeros(v.shape, v.dtype.as_numpy_dtype) if g is None else np.asarray(tf.convert_to_tensor(g)))
        for k, v, g in zip(names, variables, grads)
    }


def input_grads(fn: Any, args: list[Any], weights_out: np.ndarray, wrt: list[int]) -> list[np.ndarray]:
    """Gradients of ``sum(fn(*args) * weights_out)`` w.r.t. ``args[i]`` for ``i`` in ``wrt``, as numpy arrays."""
    with tf.GradientTape() as tape:
        for i in wrt:
            tape.watch(args[i])
        y = fn(*args)
        loss = tf.reduce_sum(y * tf.constant(weights_out, dtype=y.dtype))
    grads = tape.gradient(loss, [args[i] for i in wrt])
    return [np.zeros(tuple(args[i].shape)) if g is None else np.asarray(g) for i, g in zip(wrt, grads)]
