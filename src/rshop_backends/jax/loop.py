"""The jax loop: ``jax.lax.scan`` over the time-major sequences.

``scan(step, P, xs, states, consts, options, length) -> (outputs, final_states)``, the same
contract as :func:`rshop_backends.numpy.loop.scan`: ``xs`` is a list of scanned sequences
(batch, T, ...) — x, a shifted ground truth, a bool mask — all reversed together with
``go_backwards``; it may be empty (decode), then the scan runs ``length`` steps. The step is
called as ``step(P, *x_slices, states, consts)``. Outputs are (batch, T, ...) in processing
order with ``return_sequences``, else the last step's (batch, ...). Pure and traceable: the
caller jits it (T and ``length`` are static under jit).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _unroll(option, steps: int) -> int:
    """``unroll`` as scan's: False -> 1, True -> T (fully unrolled), k -> k."""
    if option is True:
        return max(int(steps), 1)
    if option is False:
        return 1
    return int(option)


def scan(step, P, xs, states, consts, options, length):
    seqs = tuple(jnp.swapaxes(x, 0, 1) for x in xs)  # each (T, batch, ...)
    if options.go_backwards:
        seqs = tuple(jnp.flip(s, axis=0) for s in seqs)  # processed forward: outputs in processing order
    steps = seqs[0].shape[0] if seqs else int(length)
    unroll = _unroll(options.unroll, steps)
    states = tuple(states)
    consts = tuple(consts)
    scanned = seqs if seqs else None  # decode: nothing scanned, ``length`` steps

    if options.return_sequences:
        def body(carry, x_t):
            ys, new = step(P, *(x_t or ()), carry, consts)
            return tuple(new), tuple(ys)

        states, seq = jax.lax.scan(body, states, scanned, length=steps, unroll=unroll)
        ys = [jnp.swapaxes(y, 0, 1) for y in seq]  # (T, batch, ...) -> (batch, T, ...)
        return ys, list(states)

    # Only the last output is wanted: carry it instead of stacking every step's.
    first = tuple(s[0] for s in seqs)
    shapes = jax.eval_shape(lambda p, x_t, s, k: step(p, *x_t, s, k)[0], P, first, states, consts)
    last = tuple(jnp.zeros(s.shape, s.dtype) for s in shapes)

    def body_last(carry, x_t):
        s, _ = carry
        ys, new = step(P, *(x_t or ()), s, consts)
        return (tuple(new), tuple(ys)), None

    (states, ys), _ = jax.lax.scan(body_last, (states, last), scanned, length=steps, unroll=unroll)
    return list(ys), list(states)
