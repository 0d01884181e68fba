"""One timing interface for every implementation: ``fwd()``, ``fb()`` and ``out()``.

``fwd`` runs the forward pass and waits for it; ``fb`` computes the gradients of sum(outputs)
w.r.t. all weights and waits; ``out`` returns the forward output as numpy (for the correctness
guard).  Waiting is engine-neutral: jax ``block_until_ready``, TensorFlow ``.numpy()``, torch is
eager (the torch forward runs under ``no_grad``, as inference does).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Impl:
    fwd: Callable
    fb: Callable
    out: Callable


def torch_impl(forward, params):
    """``forward()`` -> (batch, T, h) tensor; ``params``: the tensors to differentiate."""
    import torch

    def fwd():
        with torch.no_grad():
            return forward()

    def fb():
        for p in params:
            p.grad = None
        forward().sum().backward()
        return [p.grad for p in params]

    return Impl(fwd, fb, lambda: fwd().numpy())


def jax_impl(apply, params, x):
    """``apply(params, x)`` is pure; forward and gradient are jitted."""
    import jax

    f = jax.jit(apply)
    g = jax.jit(jax.grad(lambda p, x: apply(p, x).sum()))
    return Impl(
        lambda: f(params, x).block_until_ready(),
        lambda: jax.block_until_ready(g(params, x)),
        lambda: jax.device_get(f(params, x)),
    )


def tf_impl(call, variables, x):
    """``call(x)`` reads ``variables``; both directions run inside ``tf.function``."""
    import tensorflow as tf

    f = tf.function(call)

    @tf.function
    def g(x):
        with tf.GradientTape() as tape:
            s = tf.reduce_sum(call(x))
        return tape.gradient(s, variables)

    return Impl(lambda: f(x).numpy(), lambda: [t.numpy() for t in g(x)], lambda: f(x).numpy())
