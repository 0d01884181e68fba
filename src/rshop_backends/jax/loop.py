"""The jax loop: ``jax.lax.scan`` over the time-major sequence.

``scan(step, P, x, states, consts, options) -> (outputs, final_states)``, with ``x`` of
shape (batch, T, *input_shape), the same contract as :func:`rshop_backends.numpy.loop.scan`.
Outputs are (batch, T, ...) in processing order with ``return_sequences``, else the last
step's (batch, ...). Pure and traceable: the caller jits it (T is static under jit).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _unroll(option, steps: int) -> int:
    """``unroll`` as scan's: False -> 1, True -> T (fully unrolled), k -> k."""
    if option is True:
        return steps
    if option is False:
        return 1
    return int(option)


def scan(step, P, x, states, consts, options):
    xs = jnp.swapaxes(x, 0, 1)  # (T, batch, ...)
    if options.go_backwards:
        xs = jnp.flip(xs, axis=0)  # processed forward, so outputs come in processing order
    steps = xs.shape[0]
    unroll = _unroll(options.unroll, steps)
    states = tuple(states)
    consts = tuple(consts)

    if options.return_sequences:
        def body(carry, x_t):
            ys, new = step(P, x_t, carry, consts)
            return tuple(new), tuple(ys)

        states, seq = jax.lax.scan(body, states, xs, unroll=unroll)
        ys = [jnp.swapaxes(y, 0, 1) for y in seq]  # (T, batch, ...) -> (batch, T, ...)
        return ys, list(states)

    # Only the last output is wanted: carry it instead of stacking every step's.
    shapes = jax.eval_shape(lambda p, x_t, s, k: step(p, x_t, s, k)[0], P, xs[0], states, consts)
    last = tuple(jnp.zeros(s.shape, s.dtype) for s in shapes)

    def body_last(carry, x_t):
        s, _ = carry
        ys, new = step(P, x_t, s, consts)
        return (tuple(new), tuple(ys)), None

    (states, ys), _ = jax.lax.scan(body_last, (states, last), xs, unroll=unroll)
    return list(ys), list(states)
