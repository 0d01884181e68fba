"""The tensorflow loop: ``tf.while_loop`` over time-major ``tf.TensorArray`` s.

``scan(step, P, xs, states, consts, options, length) -> (outputs, final_states)``:
``xs`` is a list of scanned sequences (batch, T, ...) (x, a shifted ground truth, a bool
mask), all processed in reverse time order with ``go_backwards``; it may be empty
(decode), then the loop runs ``length`` steps. ``length`` is a Python int or a scalar
int32 tensor; ``None`` takes T from ``xs[0]``. The step is called as
``step(P, *x_slices, states, consts)``. ``outputs`` are (batch, T, ...) with
``return_sequences`` (in processing order) or the last processed step's (batch, ...).
It is meant to be traced inside ``tf.function`` (it also runs eagerly) and computes
exactly the loop of :class:`rshop_core.RecurrentModel`; ``unroll`` never changes numbers:

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


def static_length(xs, length):
    """The number of steps as a Python int, or None when it is only known at run time."""
    if isinstance(length, int):
        return length
    if length is None and xs:
        return xs[0].shape[1]
    return tf.get_static_value(length) if length is not None else None


def _unrolled(step, P, xs, states, consts, options, length):
    steps = static_length(xs, length)
    if steps is None:
        shape = tuple(xs[0].shape) if xs else None
        raise RshopShapeError(
            "tensorflow loop: expected x with a static number of time steps for unroll=True, "
            f"received shape {shape}. Give the tf.function a fixed T, or use unroll=False or an int.")
    slices = [tf.unstack(x, num=steps, axis=1) for x in xs]  # T slices each; the gradient is one stack
    order = range(steps - 1, -1, -1) if options.go_backwards else range(steps)
    seq, ys = [], None
    for t in order:
        ys, states = step(P, *[s[t] for s in slices], states, consts)
        if options.return_sequences:
            seq.append(ys)
    if options.return_sequences:
        ys = tuple(tf.stack(col, axis=1) for col in zip(*seq, strict=True))
    return list(ys), list(states)


def scan(step, P, xs, states, consts, options, length=None):
    xs, states, consts = list(xs), tuple(states), tuple(consts)
    if options.unroll is True:
        return _unrolled(step, P, xs, states, consts, options, length)
    k = 1 if options.unroll is False else int(options.unroll)
    if length is None:
        length = tf.shape(xs[0])[1]
    n = tf.convert_to_tensor(length, dtype=tf.int32)
    tas = [tf.TensorArray(x.dtype, size=n, infer_shape=True).unstack(_time_major(x)) for x in xs]
    backwards, keep = options.go_backwards, options.return_sequences

    def read(t):  # the scanned slices at processing position t: (batch, ...) each
        i = n - 1 - t if backwards else t
        return [ta.read(i) for ta in tas]

    ys, states = step(P, *read(0), states, consts)  # the peeled first step
    outs = ()
    if keep:
        outs = tuple(tf.TensorArray(y.dtype, size=n, element_shape=y.shape).write(0, y) for y in ys)

    def one(t, ys, states, outs):
        ys, states = step(P, *read(t), states, consts)
        if keep:
            outs = tuple(ta.write(t, y) for ta, y in zip(outs, ys, strict=True))
        return t + 1, ys, states, outs

    def many(t, ys, states, outs):
        for _ in range(k):
            t, ys, states, outs = one(t, ys, states, outs)
        return t, ys, states, outs

    # maximum_iterations bounds the gradient's accumulators (XLA needs them fixed).
    carry = (tf.constant(1), ys, states, outs)
    if k > 1:
        carry = tf.while_loop(lambda t, *_: t + k <= n, many, carry, maximum_iterations=(n - 1) // k,
                              parallel_iterations=PARALLEL)
    carry = tf.while_loop(lambda t, *_: t < n, one, carry,
                          maximum_iterations=(n - 1) % k if k > 1 else n - 1,
                          parallel_iterations=PARALLEL)
    _, ys, states, outs = carry
    if keep:
        ys = tuple(_batch_major(ta.stack()) for ta in outs)
    return list(ys), list(states)
