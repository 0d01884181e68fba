"""The numpy engine's linear scan (temporary)."""

from __future__ import annotations

import numpy as np


def linear_scan(a, b, h0):
    block = a.ndim == b.ndim + 1
    h = h0
    out = []
    for t in range(b.shape[1]):
        h = (np.einsum("...ij,...j->...i", a[:, t], h) if block else a[:, t] * h) + b[:, t]
        out.append(h)
    return np.stack(out, axis=1)


# -- what the shared time-parallel driver uses (rshop_backends.parallel.ArrayOps) -------------
AUTO_MIN_STEPS: int | None = None  # the reference runs the sequential definition unless a parallel loop is asked for


def reshape(a, shape):
    return np.reshape(a, tuple(shape))


def concat(arrays, axis):
    return np.concatenate(list(arrays), axis=axis)


def stack(arrays, axis):
    return np.stack(list(arrays), axis=axis)


def take(a, index):
    return a[..., index]


def zeros_like(a):
    return np.zeros_like(a)


def repeat_time(a, steps):
    return np.broadcast_to(a[:, None], (a.shape[0], steps, *a.shape[1:]))


def stop_gradient(a):
    return a


def sum_last(a):
    return a.sum(-1)


def max_change(new, old):
    return np.max(np.abs(new - old) / (1.0 + np.abs(new)), initial=0.0)


def while_loop(cond, body, init):
    carry = init
    while cond(carry):
        carry = body(carry)
    return carry


def cond(pred, true_fn, false_fn):
    return true_fn() if bool(pred) else false_fn()


def report(callback, *values):
    callback(*values)
