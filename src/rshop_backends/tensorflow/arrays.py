"""Array hooks of the tensorflow engine (every engine has this module): numpy <-> engine arrays, the scope where
float64 arrays exist, and parameter gradients of a projected output. Public through
:func:`rshop_backends.to_native`, :func:`rshop_backends.to_numpy` and :mod:`rshop_backends.parity`."""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import tensorflow as tf

GRADIENTS = True  # whether loss_grads gives gradients (the conformance suite and compare read it)


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
