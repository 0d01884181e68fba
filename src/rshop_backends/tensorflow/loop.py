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

``remat`` (k steps per segment, :meth:`LoopOptions.remat_segment`; T may be unknown at
trace time, then k = ceil(sqrt(T)) is computed in the graph): the steps are cut into
ceil(T / k) segments, the last one holding the T % k steps left when k does not divide T.
The whole loop is one ``tf.custom_gradient`` function of explicit tensor arguments (the
parameter values, constants, initial states and sequences, so gradients reach them). Its
forward pass runs the segments in a ``tf.while_loop`` and keeps only the states at each
segment's start; its gradient walks the segments in reverse in another ``tf.while_loop``,
recomputing one segment under a fresh ``tf.GradientTape`` and pulling the gradient of its
end states back to its start. (Differentiating a while loop whose body holds a
``tf.custom_gradient`` fails in TF when the step uses eager literals, hence this shape.)
Segments always run as while loops: ``unroll`` has no effect under ``remat``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import tensorflow as tf

from rshop_core.errors import RshopShapeError

if TYPE_CHECKING:
    from rshop_backends.codegen import GeneratedStep
    from rshop_core.options import LoopOptions


# Loop iterations TF may run concurrently (independent ops of neighbouring steps
# overlap, notably in the gradient loop); tf.while_loop defaults to 10.
PARALLEL = 32


def _swap_batch_time(x: Any) -> Any:
    """(batch, T, ...) -> (T, batch, ...), and back: the same transpose both ways."""
    rank = len(x.shape)
    return tf.transpose(x, [1, 0] + list(range(2, rank)))


def static_length(xs: Sequence[Any], length: Any) -> int | None:
    """The number of steps as a Python int, or None when it is only known at run time."""
    if isinstance(length, int):
        return length
    if length is None and xs:
        return xs[0].shape[1]
    return tf.get_static_value(length) if length is not None else None


def _unrolled(step: Any, P: Any, xs: Any, states: Any, consts: Any, options: Any, length: Any) -> Any:
    steps = static_length(xs, length)
    if steps is None:
        shape = tuple(xs[0].shape) if xs else None
        raise RshopShapeError(
            "tensorflow loop: expected x with a static number of time steps for unroll=True, "
            f"received shape {shape}. Give the tf.function a fixed T, or use unroll=False or an int."
        )
    slices = [tf.unstack(x, num=steps, axis=1) for x in xs]  # T slices each; the gradient is one stack
    order = range(steps - 1, -1, -1) if options.go_backwards else range(steps)
    seq: list[Sequence[Any]] = []
    ys: Sequence[Any] = ()  # T >= 1: set by the first step
    for t in order:
        ys, states = step(P, *[s[t] for s in slices], states, consts)
        if options.return_sequences:
            seq.append(ys)
    if options.return_sequences:
        ys = tuple(tf.stack(col, axis=1) for col in zip(*seq, strict=True))
    return list(ys), list(states)


def scan(
    step: GeneratedStep,
    P: dict[str, Any],
    xs: Sequence[Any],
    states: Sequence[Any],
    consts: Sequence[Any],
    options: LoopOptions,
    length: int | None = None,
) -> tuple[list[Any], list[Any]]:
    xs, states, consts = list(xs), tuple(states), tuple(consts)
    if options.remat is not False:
        return _remat_scan(step, P, xs, states, consts, options, length)
    if options.unroll is True:
        return _unrolled(step, P, xs, states, consts, options, length)
    k = 1 if options.unroll is False else int(options.unroll)
    steps = static_length(xs, length)
    if steps is not None:  # the peeled first step runs alone: k > T - 1 would trace steps that never run
        k = max(min(k, int(steps) - 1), 1)
    if length is None:
        length = tf.shape(xs[0])[1]
    n = tf.convert_to_tensor(length, dtype=tf.int32)
    tas = [tf.TensorArray(x.dtype, size=n, infer_shape=True).unstack(_swap_batch_time(x)) for x in xs]
    backwards, keep = options.go_backwards, options.return_sequences

    def read(t: Any) -> Any:  # the scanned slices at processing position t: (batch, ...) each
        i = n - 1 - t if backwards else t
        return [ta.read(i) for ta in tas]

    ys, states = step(P, *read(0), states, consts)  # the peeled first step
    outs = ()
    if keep:
        outs = tuple(tf.TensorArray(y.dtype, size=n, element_shape=y.shape).write(0, y) for y in ys)

    def one(t: Any, ys: Any, states: Any, outs: Any) -> Any:
        ys, states = step(P, *read(t), states, consts)
        if keep:
            outs = tuple(ta.write(t, y) for ta, y in zip(outs, ys, strict=True))
        return t + 1, ys, states, outs

    def many(t: Any, ys: Any, states: Any, outs: Any) -> Any:
        for _ in range(k):
            t, ys, states, outs = one(t, ys, states, outs)
        return t, ys, states, outs

    # maximum_iterations bounds the gradient's accumulators (XLA needs them fixed).
    carry = (tf.constant(1), ys, states, outs)
    if k > 1:
        carry = tf.while_loop(
            lambda t, *_: t + k <= n, many, carry, maximum_iterations=(n - 1) // k, parallel_iterations=PARALLEL
        )
    carry = tf.while_loop(
        lambda t, *_: t < n,
        one,
        carry,
        maximum_iterations=(n - 1) % k if k > 1 else n - 1,
        parallel_iterations=PARALLEL,
    )
    _, ys, states, outs = carry
    if keep:
        ys = tuple(_swap_batch_time(ta.stack()) for ta in outs)
    return list(ys), list(states)


# -- remat -----------------------------------------------------------------------------
def _ceil_sqrt(n: Any) -> Any:
    """ceil(sqrt(n)) of a scalar int32 tensor n >= 1, exact (float rounding corrected)."""
    r = tf.cast(tf.math.sqrt(tf.cast(n, tf.float64)), tf.int32)  # floor sqrt, up to rounding
    r -= tf.cast(r * r > n, tf.int32)
    r += tf.cast((r + 1) * (r + 1) <= n, tf.int32)
    return tf.maximum(r + tf.cast(r * r < n, tf.int32), 1)


def _any_length(shape: Any) -> Any:
    """A time-major shape with the time dimension unknown (segments differ in length)."""
    return tf.TensorShape([None]).concatenate(shape[1:])


def _segments(seqs: Any, count: Any, lengths: Any) -> Any:
    """Per time-major sequence, a TensorArray of its ``count`` segments of ``lengths`` steps."""
    return [
        tf.TensorArray(s.dtype, size=count, infer_shape=False, element_shape=_any_length(s.shape)).split(s, lengths)
        for s in seqs
    ]


def _segment(step: Any, names: Any, n_consts: Any, n_states: Any, keep: Any) -> Any:
    """``run(count, *params, *consts, *states, *seqs) -> (*outputs, *states)``: ``count`` steps
    over the segment's time-major slices ``seqs`` (count, batch, ...), in processing order.
    Outputs are stacked (count, batch, ...) when ``keep``, else the segment's last."""

    def run(count: Any, *args: Any) -> Any:
        P = dict(zip(names, args[: len(names)], strict=True))
        args = args[len(names) :]
        consts, states, seqs = args[:n_consts], tuple(args[n_consts : n_consts + n_states]), args[n_consts + n_states :]
        tas = [tf.TensorArray(x.dtype, size=count, infer_shape=True).unstack(x) for x in seqs]
        ys, states = step(P, *[ta.read(0) for ta in tas], states, consts)
        outs = ()
        if keep:
            outs = tuple(tf.TensorArray(y.dtype, size=count, element_shape=y.shape).write(0, y) for y in ys)

        def one(t: Any, ys: Any, states: Any, outs: Any) -> Any:
            ys, states = step(P, *[ta.read(t) for ta in tas], states, consts)
            if keep:
                outs = tuple(ta.write(t, y) for ta, y in zip(outs, ys, strict=True))
            return t + 1, ys, states, outs

        _, ys, states, outs = tf.while_loop(
            lambda t, *_: t < count,
            one,
            (tf.constant(1), ys, tuple(states), outs),
            maximum_iterations=count - 1,
            parallel_iterations=PARALLEL,
        )
        if keep:
            ys = tuple(ta.stack() for ta in outs)
        return (*ys, *states)

    return run


def _remat_plan(xs: Any, options: Any, length: Any) -> tuple:
    """``(n, k, count, lengths)``: the steps, the steps per segment, the segments, and each
    segment's steps (the last may be shorter); Python ints when T is static, else tensors."""
    steps = static_length(xs, length)
    if steps is not None:
        k = options.remat_segment(steps)
        n, count = steps, -(-steps // k)
    else:
        n = tf.convert_to_tensor(tf.shape(xs[0])[1] if length is None else length, dtype=tf.int32)
        k = _ceil_sqrt(n) if options.remat is True else tf.constant(int(options.remat), tf.int32)
        count = (n + k - 1) // k
    return n, k, count, tf.minimum(k, n - tf.range(count) * k)


class _RematLoop:
    """The segments of one remat call: :meth:`forward` keeps each segment's start states,
    :meth:`backward` recomputes the segments in reverse and pulls the gradient through each.

    Arguments are flat lists: ``fixed`` (parameter values, then constants), ``states`` and
    ``seqs`` (time-major, in processing order)."""

    def __init__(
        self, step: Any, names: Any, n_consts: Any, n_states: Any, keep: Any, count: Any, lengths: Any
    ) -> None:
        self.run = _segment(step, names, n_consts, n_states, keep)
        self.n_states, self.keep, self.count, self.lengths = n_states, keep, count, lengths

    def cut(self, out: Any) -> tuple:
        """A segment's flat result as ``(outputs, states)``."""
        return list(out[: len(out) - self.n_states]), list(out[len(out) - self.n_states :])

    def forward(self, fixed: Any, states: Any, seqs: Any) -> tuple:
        """``(outputs, final states, starts, pieces)``: outputs (T, batch, ...) with ``keep``, else the
        last step's; ``starts`` each state at each segment's start (count, batch, ...); ``pieces`` the
        sequences cut in segments (the backward pass reads them again)."""
        count, lengths, keep = self.count, self.lengths, self.keep
        pieces = _segments(seqs, count, lengths)
        starts = [tf.TensorArray(s.dtype, size=count, element_shape=s.shape).write(0, s) for s in states]
        ys, states = self.cut(self.run(lengths[0], *fixed, *states, *[ta.read(0) for ta in pieces]))  # peeled
        outs = []
        if keep:  # stacked per segment, of different lengths: collected, not carried
            outs = [
                tf.TensorArray(y.dtype, size=count, infer_shape=False, element_shape=_any_length(y.shape)).write(0, y)
                for y in ys
            ]
            ys = []

        def body(i: Any, ys: Any, states: Any, starts: Any, outs: Any) -> Any:
            starts = [ta.write(i, s) for ta, s in zip(starts, states, strict=True)]
            new, states = self.cut(self.run(lengths[i], *fixed, *states, *[ta.read(i) for ta in pieces]))
            if keep:
                return i + 1, ys, states, starts, [ta.write(i, y) for ta, y in zip(outs, new, strict=True)]
            return i + 1, new, states, starts, outs

        _, ys, states, starts, outs = tf.while_loop(
            lambda i, *_: i < count, body, (tf.constant(1), ys, states, starts, outs), maximum_iterations=count - 1
        )
        if keep:
            ys = [ta.concat() for ta in outs]  # (T, batch, ...)
        return ys, states, [ta.stack() for ta in starts], pieces  # starts: all the backward pass keeps

    def _segment_grad(
        self, i: Any, fixed: Any, starts: Any, pieces: Any, grad_fixed: Any, grad_seqs: Any, d_new: Any, d_states: Any
    ) -> list:
        """Recompute segment ``i`` from its start under a tape; the gradients of the watched
        ``fixed[grad_fixed]``, start states and ``seqs[grad_seqs]`` given those of its end."""
        start = [s[i] for s in starts]
        seg = [ta.read(i) for ta in pieces]
        watched = [fixed[j] for j in grad_fixed] + start + [seg[j] for j in grad_seqs]
        with tf.GradientTape() as tape:
            tape.watch(watched)
            new_ys, new_states = self.cut(self.run(self.lengths[i], *fixed, *start, *seg))
        return tape.gradient(
            new_ys + new_states,
            watched,
            output_gradients=d_new + list(d_states),
            unconnected_gradients=tf.UnconnectedGradients.ZERO,
        )

    def backward(self, fixed: Any, seqs: Any, pieces: Any, starts: Any, d_ys: Any, d_final: Any) -> list:
        """The gradients of ``[*fixed, *states, *seqs]`` (None for non-float ones) given those of
        the outputs ``d_ys`` and final states ``d_final``."""
        count, lengths, keep = self.count, self.lengths, self.keep
        d_pieces = _segments(d_ys, count, lengths) if keep else []
        grad_fixed = [j for j, a in enumerate(fixed) if a.dtype.is_floating]
        grad_seqs = [j for j, a in enumerate(seqs) if a.dtype.is_floating]
        d_seqs = [
            tf.TensorArray(seqs[j].dtype, size=count, infer_shape=False, element_shape=_any_length(seqs[j].shape))
            for j in grad_seqs
        ]

        def back(i: Any, d_states: Any, d_fixed: Any, d_seqs: Any) -> Any:
            if keep:
                d_new = [ta.read(i) for ta in d_pieces]
            else:  # only the last segment's output is the result
                last = tf.cast(tf.equal(i, count - 1), d_ys[0].dtype) if d_ys else None
                d_new = [d * tf.cast(last, d.dtype) for d in d_ys]
            g = self._segment_grad(i, fixed, starts, pieces, grad_fixed, grad_seqs, d_new, d_states)
            a, b = len(grad_fixed), len(grad_fixed) + self.n_states
            d_fixed = [acc + gi for acc, gi in zip(d_fixed, g[:a], strict=True)]
            d_seqs = [ta.write(i, gi) for ta, gi in zip(d_seqs, g[b:], strict=True)]
            return i - 1, g[a:b], d_fixed, d_seqs

        # One segment at a time (parallel_iterations=1): a segment's recomputed steps are
        # all that lives at once, besides what the forward pass kept.
        _, d_states, d_fixed, d_seqs = tf.while_loop(
            lambda i, *_: i >= 0,
            back,
            (count - 1, d_final, [tf.zeros_like(fixed[j]) for j in grad_fixed], d_seqs),
            maximum_iterations=count,
            parallel_iterations=1,
        )
        full_fixed, full_seqs = [None] * len(fixed), [None] * len(seqs)
        for j, d in zip(grad_fixed, d_fixed, strict=True):
            full_fixed[j] = d
        for j, ta in zip(grad_seqs, d_seqs, strict=True):
            full_seqs[j] = ta.concat()
        return [*full_fixed, *d_states, *full_seqs]


def _remat_scan(step: Any, P: Any, xs: Any, states: Any, consts: Any, options: Any, length: Any) -> Any:
    """The loop in segments, differentiated segment by segment in reverse (see the module docstring)."""
    _, _, count, lengths = _remat_plan(xs, options, length)
    keep, n_states = options.return_sequences, len(states)
    seqs = [_swap_batch_time(x) for x in xs]
    if options.go_backwards:
        seqs = [tf.reverse(s, [0]) for s in seqs]  # processed forward: outputs in processing order
    names = list(P)
    fixed = [tf.convert_to_tensor(P[q]) for q in names] + list(consts)  # explicit: gradients reach them
    n_fixed, n_seqs = len(fixed), len(seqs)
    remat = _RematLoop(step, names, len(consts), n_states, keep, count, lengths)

    @tf.custom_gradient
    def loop(*args: Any) -> Any:
        # From stopped arguments: an eager tape records nothing in here (the gradient is `grad`).
        stopped = [tf.stop_gradient(a) for a in args]
        fixed, states, seqs = (
            stopped[:n_fixed],
            stopped[n_fixed : len(stopped) - n_seqs],
            stopped[len(stopped) - n_seqs :],
        )
        ys, states, starts, pieces = remat.forward(fixed, states, seqs)
        result = [*ys, *states]

        def grad(*d_result: Any) -> Any:
            d_full = [tf.zeros_like(r) if d is None else d for d, r in zip(d_result, result, strict=True)]
            return remat.backward(fixed, seqs, pieces, starts, d_full[: len(ys)], d_full[len(ys) :])

        return result, grad

    ys, states = remat.cut(loop(*fixed, *states, *seqs))
    if keep:
        ys = [_swap_batch_time(y) for y in ys]
    return list(ys), list(states)
