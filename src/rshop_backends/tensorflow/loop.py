"""The tensorflow loop: ``tf.while_loop`` over time-major ``tf.TensorArray`` s.

``scan(step, P, x, states, consts, options) -> (outputs, final_states)`` with ``x`` of
shape (batch, T, *input_shape); ``outputs`` are (batch, T, ...) with ``return_sequences``
(in processing order) or the last processed step's (batch, ...). It is meant to be traced
inside ``tf.function`` (it also runs eagerly) and computes exactly the loop of
:class:`rshop_core.RecurrentModel`; ``unroll`` never changes numbers:

- ``False``: one ``tf.while_loop`` iteration per step; T may be unknown at trace time.
- ``True``: a Python loop over the static T (T must be known when tracing).
- ``k``: k steps per while iteration, then a loop of single steps for the ``T % k`` left.

The first processed step is peeled off the loop, so the loop variables get their
shapes and dtypes from a real step (no output shape has to be guessed).
"""

from __future__ import annotations

import tensorflow as tf

from rshop_core.errors import RshopShapeError

# Loop iterations TF may run concurrently (independent ops of neighbouring steps
# overlap, notably in the gradient loop); tf.while_loop defaults to 10.
PARALLEL = 32


def _time_major(x):
    """(batch, T, ...) -> (T, batch, ...)."""
    rank = len(x.shape)
    return tf.transpose(x, [1, 0] + list(range(2, rank)))


def _batch_major(seq):
    """(T, batch, ...) -> (batch, T, ...)."""
    rank = len(seq.shape)
    return tf.transpose(seq, [1, 0] + list(range(2, rank)))


def _unrolled(step, P, x, states, consts, options):
    steps = x.shape[1]
    if steps is None:
        raise RshopShapeError(
            "tensorflow loop: expected x with a static number of time steps for unroll=True, "
            f"received shape {tuple(x.shape)}. Give the tf.function a fixed T, or use unroll=False or an int.")
    xs = tf.unstack(x, axis=1)  # T slices (batch, ...); its gradient is one stack
    if options.go_backwards:
        xs = xs[::-1]
    seq, ys = [], None
    for x_t in xs:
        ys, states = step(P, x_t, states, consts)
        if options.return_sequences:
            seq.append(ys)
    if options.return_sequences:
        ys = tuple(tf.stack(col, axis=1) for col in zip(*seq, strict=True))
    return list(ys), list(states)


def scan(step, P, x, states, consts, options):
    states, consts = tuple(states), tuple(consts)
    if options.unroll is True:
        return _unrolled(step, P, x, states, consts, options)
    k = 1 if options.unroll is False else int(options.unroll)
    xs = tf.TensorArray(x.dtype, size=tf.shape(x)[1], infer_shape=True).unstack(_time_major(x))
    n = xs.size()
    backwards, keep = options.go_backwards, options.return_sequences

    def read(t):  # x at processing position t: (batch, *input_shape)
        return xs.read(n - 1 - t if backwards else t)

    ys, states = step(P, read(0), states, consts)  # the peeled first step
    tas = ()
    if keep:
        tas = tuple(tf.TensorArray(y.dtype, size=n, element_shape=y.shape).write(0, y) for y in ys)

    def one(t, ys, states, tas):
        ys, states = step(P, read(t), states, consts)
        if keep:
            tas = tuple(ta.write(t, y) for ta, y in zip(tas, ys, strict=True))
        return t + 1, ys, states, tas

    def many(t, ys, states, tas):
        for _ in range(k):
            t, ys, states, tas = one(t, ys, states, tas)
        return t, ys, states, tas

    # maximum_iterations bounds the gradient's accumulators (XLA needs them fixed).
    carry = (tf.constant(1), ys, states, tas)
    if k > 1:
        carry = tf.while_loop(lambda t, *_: t + k <= n, many, carry, maximum_iterations=(n - 1) // k,
                              parallel_iterations=PARALLEL)
    carry = tf.while_loop(lambda t, *_: t < n, one, carry,
                          maximum_iterations=(n - 1) % k if k > 1 else n - 1,
                          parallel_iterations=PARALLEL)
    _, ys, states, tas = carry
    if keep:
        ys = tuple(_batch_major(ta.stack()) for ta in tas)
    return list(ys), list(states)
