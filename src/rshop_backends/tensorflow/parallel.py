"""The tensorflow linear scan: the odd/even reduction under ``tf.custom_gradient``, T static or unknown.

``linear_scan(a, b, h0)`` runs the algorithm of :mod:`rshop_backends.scan_algorithms` with tf operations, in
eager mode or traced inside ``tf.function``:

- T known when tracing (or eager): the ceil(log2 T) levels are unrolled in Python into one straight graph;
- T unknown when tracing (an ``input_signature`` with None): the levels run in two ``tf.while_loop`` s, one
  down (keeping each level's even elements in ``tf.TensorArray`` s of varying length) and one up, so one
  trace serves every T.

Its gradient (``tf.custom_gradient``) is the reverse scan: the same reduction run backwards in time gives
the adjoint ``λ`` (``λ_t = g_t + a_{t+1}^T λ_{t+1}``); then ``dL/da_t = λ_t h_{t-1}^T``,
``dL/db_t = λ_t``, ``dL/dh0 = a_1^T λ_1``. Numbers stay in the tensors' dtype; products of many ``a_t`` with
``|a| < 1`` underflow gracefully to 0, as the sequential loop's contributions do.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from .. import scan_algorithms as alg

__all__ = ["AUTO_MAX_STEP_ELEMENTS", "AUTO_MIN_STEPS", "linear_scan"]


class _Tf:
    """The namespace :mod:`rshop_backends.scan_algorithms` computes with."""

    cat = staticmethod(tf.concat)
    stack = staticmethod(tf.stack)
    reshape = staticmethod(tf.reshape)

    @staticmethod
    def length(x: Any) -> Any:
        n = x.shape[1]
        return int(n) if n is not None else tf.shape(x)[1]

    @staticmethod
    def batch_shape(x: Any) -> Any:
        dynamic = tf.shape(x)
        return [int(n) if n is not None else dynamic[i] for i, n in enumerate(x.shape)]

    @staticmethod
    def pad_time(x: Any, n: Any) -> Any:
        return tf.pad(x, [[0, 0], [0, n]] + [[0, 0]] * (len(x.shape) - 2))


NS = _Tf()


def _unknown_time(x: Any) -> Any:
    """``x``'s static shape with the time axis unknown (the loop variables' shape invariant)."""
    return tf.TensorShape([x.shape[0], None, *x.shape[2:]])


def _levels_dynamic(a: Any, b: Any, block: Any, reverse: Any = False) -> Any:
    """:func:`~rshop_backends.scan_algorithms.scan_levels` for a T unknown at trace time: two while loops."""

    def array() -> Any:
        return tf.TensorArray(b.dtype, size=0, dynamic_size=True, infer_shape=False, element_shape=None)

    def down(i: Any, a: Any, b: Any, kept_a: Any, kept_b: Any, lengths: Any) -> Any:
        length = tf.shape(a)[1]
        a, b, a_kept, b_kept = alg.reduce_level(NS, a, b, block, reverse)
        return i + 1, a, b, kept_a.write(i, a_kept), kept_b.write(i, b_kept), lengths.write(i, length)

    lengths0 = tf.TensorArray(tf.int32, size=0, dynamic_size=True)
    n, _, h, kept_a, kept_b, lengths = tf.while_loop(
        lambda i, a, *_: tf.shape(a)[1] > 1,
        down,
        (tf.constant(0), a, b, array(), array(), lengths0),
        shape_invariants=(tf.TensorShape([]), _unknown_time(a), _unknown_time(b), None, None, None),
    )

    def up(i: Any, h: Any) -> Any:
        a_kept = tf.ensure_shape(kept_a.read(i - 1), _unknown_time(a))
        b_kept = tf.ensure_shape(kept_b.read(i - 1), _unknown_time(b))
        return i - 1, alg.expand(NS, h, a_kept, b_kept, lengths.read(i - 1), block, reverse)

    _, h = tf.while_loop(lambda i, h: i > 0, up, (n, h), shape_invariants=(tf.TensorShape([]), _unknown_time(b)))
    return h


def _levels(a: Any, b: Any, block: Any, reverse: Any = False) -> Any:
    if b.shape[1] is None or a.shape[1] is None:
        return _levels_dynamic(a, b, block, reverse)
    if b.shape[1] == 0:
        return b
    return alg.scan_levels(NS, a, b, block, reverse)


def _forward(a: Any, b: Any, h0: Any, block: Any) -> Any:
    return _levels(a, alg.fold_h0(NS, a, b, h0, block), block)


def _grads(a: Any, h0: Any, h: Any, g: Any, block: Any) -> Any:
    """(dL/da, dL/db, dL/dh0) from the states ``h`` and ``g = dL/dh``: the adjoint by the reverse scan."""
    a_next = tf.concat([a[:, 1:], tf.zeros_like(a[:, :1])], 1)
    if block:
        a_next = tf.linalg.matrix_transpose(a_next)
    lam = _levels(a_next, g, block, reverse=True)
    h_prev = tf.concat([h0[:, None], h[:, :-1]], 1)
    da = lam[..., :, None] * h_prev[..., None, :] if block else lam * h_prev
    a_first = tf.linalg.matrix_transpose(a[:, 0]) if block else a[:, 0]
    dh0 = alg.apply(a_first, lam[:, 0], block)
    return da, lam, dh0


def linear_scan(a: Any, b: Any, h0: Any) -> Any:
    """All states of h_t = a_t ∘ h_{t-1} + b_t, t = 1..T (time axis 1).

    Diagonal form: a, b (B, T, N), h0 (B, N) -> h (B, T, N), h_t = a_t * h_{t-1} + b_t.
    Block form:   a (B, T, G, k, k), b (B, T, G, k), h0 (B, G, k) -> h (B, T, G, k), h_t = a_t @ h_{t-1} + b_t
                  (matrix-vector per group). The form is told by a.ndim == b.ndim + 1.
    Differentiable in a, b and h0 (``tf.custom_gradient``: the reverse scan). T may be unknown while tracing.
    """
    a, b, h0 = tf.convert_to_tensor(a), tf.convert_to_tensor(b), tf.convert_to_tensor(h0)
    if None in (a.shape.rank, b.shape.rank, h0.shape.rank):
        from rshop_core.errors import RshopShapeError

        raise RshopShapeError(
            f"tensorflow linear_scan: expected a, b and h0 of known rank, received shapes {a.shape}, {b.shape} "
            f"and {h0.shape}. Give the tf.function an input_signature with the rank (None only for sizes)."
        )
    block = alg.check_shapes(a.shape.as_list(), b.shape.as_list(), h0.shape.as_list(), "tensorflow linear_scan")
    alg.check_dtypes(a.dtype.name, b.dtype.name, h0.dtype.name, "tensorflow linear_scan")

    # tf.identity: inside a tf.cond branch, a tensor captured from outside the branch and handed straight
    # to a custom gradient breaks cond_v2's gradient (an AssertionError in _resolve_grad_inputs, tf 2.21)
    a, b, h0 = tf.identity(a), tf.identity(b), tf.identity(h0)

    @tf.custom_gradient
    def scan(a: Any, b: Any, h0: Any) -> Any:
        h = _forward(a, b, h0, block)
        return h, lambda g: _grads(a, h0, h, g, block)

    return scan(a, b, h0)


# -- what the shared time-parallel driver uses (rshop_backends.parallel.ArrayOps) -------------
# "auto" policy, measured by nox -s bench_parallel (docs/benchmarks-parallel.md): the scan is faster from
# T = 32 in every row measured up to T 256; at batch 8 x 256 units the forward fell behind at T 4096 (0.88x)
AUTO_MIN_STEPS: int | None = 32
AUTO_MAX_STEP_ELEMENTS: int | None = 1024

zeros_like = tf.zeros_like
stop_gradient = tf.stop_gradient


def reshape(a: Any, shape: Sequence[int]) -> Any:
    return tf.reshape(a, list(shape))


def concat(arrays: Sequence[Any], axis: int) -> Any:
    return tf.concat(list(arrays), axis=axis)


def stack(arrays: Sequence[Any], axis: int) -> Any:
    return tf.stack(list(arrays), axis=axis)


def take(a: Any, index: np.ndarray) -> Any:
    return tf.gather(a, index, axis=-1)


def repeat_time(a: Any, steps: int) -> Any:
    return tf.repeat(a[:, None], steps, axis=1)


def sum_last(a: Any) -> Any:
    return tf.reduce_sum(a, axis=-1)


def minus_product(f: Any, a: Any, v: Any) -> Any:
    return f - a * v


def max_change(new: Any, old: Any) -> Any:
    m = tf.reduce_max(tf.abs(new - old)) / (1.0 + tf.reduce_max(tf.abs(new)))
    return m + 0.0 * tf.reduce_sum(new)  # reduce_max skips NaN; a sum keeps it


EAGER = False


def while_loop(cond: Callable[[Any], Any], body: Callable[[Any], Any], init: tuple[Any, ...]) -> Any:
    return tuple(tf.while_loop(lambda *c: cond(c), lambda *c: body(c), init))


def cond(pred: Any, true_fn: Callable[[], Any], false_fn: Callable[[], Any]) -> Any:
    return tf.cond(pred, true_fn, false_fn)


def report(callback: Callable[..., Any], *values: Any) -> None:
    def call(*v: Any) -> Any:
        callback(*v)
        return np.int32(0)

    tf.numpy_function(call, list(values), tf.int32, stateful=True)
