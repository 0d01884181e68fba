"""temporary"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def linear_scan(a, b, h0):
    block = a.ndim == b.ndim + 1

    def body(h, ab):
        at, bt = ab
        h = (jnp.einsum("...ij,...j->...i", at, h) if block else at * h) + bt
        return h, h

    _, hs = jax.lax.scan(body, h0, (jnp.swapaxes(a, 0, 1), jnp.swapaxes(b, 0, 1)))
    return jnp.swapaxes(hs, 0, 1)


# -- what the shared time-parallel driver uses (rshop_backends.parallel.ArrayOps) -------------
AUTO_MIN_STEPS: int | None = 64  # measured: bench/parallel (docs/time-parallel.md)

reshape = jnp.reshape
concat = jnp.concatenate
stack = jnp.stack
zeros_like = jnp.zeros_like
stop_gradient = jax.lax.stop_gradient


def take(a, index):
    return a[..., index]


def repeat_time(a, steps):
    return jnp.broadcast_to(a[:, None], (a.shape[0], steps, *a.shape[1:]))


def sum_last(a):
    return a.sum(-1)


def max_change(new, old):
    return jnp.max(jnp.abs(new - old) / (1.0 + jnp.abs(new)))


def while_loop(cond, body, init):
    return jax.lax.while_loop(cond, body, init)


def cond(pred, true_fn, false_fn):
    return jax.lax.cond(pred, true_fn, false_fn)


def report(callback, *values):
    jax.debug.callback(callback, *values)
