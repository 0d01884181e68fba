"""temporary"""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def linear_scan(a, b, h0):
    block = a.shape.rank == b.shape.rank + 1
    h, out = h0, []
    for t in range(b.shape[1]):
        h = (tf.einsum("...ij,...j->...i", a[:, t], h) if block else a[:, t] * h) + b[:, t]
        out.append(h)
    return tf.stack(out, 1)


# -- what the shared time-parallel driver uses (rshop_backends.parallel.ArrayOps) -------------
AUTO_MIN_STEPS: int | None = 8  # measured: bench/parallel (docs/time-parallel.md)

zeros_like = tf.zeros_like
stop_gradient = tf.stop_gradient


def reshape(a, shape):
    return tf.reshape(a, list(shape))


def concat(arrays, axis):
    return tf.concat(list(arrays), axis=axis)


def stack(arrays, axis):
    return tf.stack(list(arrays), axis=axis)


def take(a, index):
    return tf.gather(a, index, axis=-1)


def repeat_time(a, steps):
    return tf.repeat(a[:, None], steps, axis=1)


def sum_last(a):
    return tf.reduce_sum(a, axis=-1)


def max_change(new, old):
    m = tf.reduce_max(tf.abs(new - old) / (1.0 + tf.abs(new)))
    return tf.where(tf.reduce_all(tf.math.is_finite(new)), m, tf.constant(float("nan"), m.dtype))


def while_loop(cond, body, init):
    return tuple(tf.while_loop(lambda *c: cond(c), lambda *c: body(c), init))


def cond(pred, true_fn, false_fn):
    return tf.cond(pred, true_fn, false_fn)


def report(callback, *values):
    def call(*v):
        callback(*v)
        return np.int32(0)

    tf.numpy_function(call, list(values), tf.int32, stateful=True)
