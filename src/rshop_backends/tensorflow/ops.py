"""The tensorflow engine's spelling of every op (``tf.*``, float32 or float64).

Every emitter returns one TensorFlow expression. Values carry the batch axis first,
so an engine array has rank ``per-example rank + 1`` when batched. Only functions of
the public ``tf`` API are used; all of them trace inside ``tf.function`` and
differentiate under ``tf.GradientTape``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import tensorflow as tf

from rshop_backends.codegen import einsum_equation, reshape_target, transpose_perm

if TYPE_CHECKING:
    from rshop_backends.codegen import Emitter


def _hard_sigmoid(x: Any) -> Any:
    """``clip(x / 6 + 1/2, 0, 1)`` (Keras 3), same shape as ``x``."""
    return tf.clip_by_value(x / 6.0 + 0.5, 0.0, 1.0)


def _softsign(x: Any) -> Any:
    """``x / (1 + |x|)``, same shape as ``x``."""
    return x / (1.0 + tf.abs(x))


def _unbroadcast(g: Any, shape_a: Any, shape_b: Any) -> Any:
    """``g`` (shaped like the broadcast of a and b) summed back to ``shape_a``."""
    axes, _ = tf.raw_ops.BroadcastGradientArgs(s0=shape_a, s1=shape_b)
    return tf.reshape(tf.reduce_sum(g, axis=axes), shape_a)


def _tie_split(pick: Any) -> Any:
    """``pick(a, b)`` (tf.maximum or tf.minimum) with the gradient at ties split 0.5 / 0.5 between
    ``a`` and ``b``, as jax and torch do (TensorFlow's own gives all of it to ``a``). The forward
    value is ``pick(a, b)`` itself, bit for bit."""

    @tf.custom_gradient
    def op(a: Any, b: Any) -> Any:
        y = pick(a, b)

        def grad(dy: Any) -> Any:
            wa = tf.where(tf.equal(a, b), 0.5, tf.where(tf.equal(y, a), 1.0, 0.0))
            wa = tf.cast(wa, dy.dtype)
            sa, sb = tf.shape(a), tf.shape(b)
            return _unbroadcast(dy * wa, sa, sb), _unbroadcast(dy * (1.0 - wa), sb, sa)

        return y, grad

    def call(a: Any, b: Any) -> Any:
        a = tf.convert_to_tensor(a)
        return op(a, tf.convert_to_tensor(b, dtype=a.dtype))

    return call


_maximum, _minimum = _tie_split(tf.maximum), _tie_split(tf.minimum)

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def _selu(x: Any) -> Any:
    """selu with the gradient at 0 taken from the left (scale * alpha), as torch and jax; ``tf.nn.selu``'s
    gradient takes it from the right (scale)."""
    return tf.where(x > 0, SELU_SCALE * x, (SELU_SCALE * SELU_ALPHA) * tf.math.expm1(tf.minimum(x, 0.0)))


NAMESPACE: dict[str, Any] = {
    "tf": tf,
    "_selu": _selu,
    "_hard_sigmoid": _hard_sigmoid,
    "_softsign": _softsign,
    "_maximum": _maximum,
    "_minimum": _minimum,
}


def constant(value: np.ndarray) -> Any:
    """A literal (numpy array, already in the computing dtype) as an eager ``tf.Tensor``.

    Made under ``tf.init_scope`` so that a step first generated inside someone's ``tf.function``
    (a Keras train step) does not capture a graph tensor that later traces cannot use.
    """
    with tf.init_scope():
        return tf.constant(value)


def _fn(name: str) -> Emitter:
    return lambda n, a, t: f"{name}({a[0]})"


def _fn2(name: Any) -> Any:
    return lambda n, a, t: f"{name}({a[0]}, {a[1]})"


def _matmul(n: Any, a: Any, t: Any) -> Any:
    """``a @ w`` for ``a`` of any engine rank, ``w`` (k, m): rank-2 ``a`` uses a plain
    ``tf.matmul`` (the fast path); other ranks contract the last axis with ``tensordot``."""
    if t[0].rank + int(t[0].batched) == 2:
        return f"tf.matmul({a[0]}, {a[1]})"
    return f"tf.tensordot({a[0]}, {a[1]}, 1)"


def _reduce(name: str) -> Emitter:
    return lambda n, a, t: f"tf.{name}({a[0]}, axis={list(n.attrs['axes'])}, keepdims={n.attrs['keepdims']})"


EMITTERS: dict[str, Emitter] = {
    "abs": _fn("tf.abs"),
    "sqrt": _fn("tf.sqrt"),
    "exp": _fn("tf.exp"),
    "log": _fn("tf.math.log"),
    "tanh": _fn("tf.tanh"),
    "sigmoid": _fn("tf.sigmoid"),  # tf.sigmoid never overflows
    "hard_sigmoid": _fn("_hard_sigmoid"),
    "relu": _fn("tf.nn.relu"),
    "softplus": _fn("tf.nn.softplus"),  # stable: log1p(exp(-|x|)) + max(x, 0) inside TF
    "softsign": _fn("_softsign"),
    "elu": _fn("tf.nn.elu"),  # alpha 1
    "maximum": _fn2("_maximum"),
    "minimum": _fn2("_minimum"),  # gradient split at ties, as on jax and torch
    "greater": _fn2("tf.greater"),
    "greater_equal": _fn2("tf.greater_equal"),
    "less": _fn2("tf.less"),
    "less_equal": _fn2("tf.less_equal"),
    "equal": _fn2("tf.equal"),
    "matmul": _matmul,
    # one tf.split for all pieces: its gradient is a single concat (~25% faster fwd+bwd than slices)
    "split": lambda n, a, t: f"tf.split({a[0]}, {n.attrs['sizes']}, axis={n.attrs['axis']})",
    "softmax": lambda n, a, t: f"tf.nn.softmax({a[0]}, axis={n.attrs['axis']})",
    "einsum": lambda n, a, t: f"tf.einsum({einsum_equation(n, t)!r}, {', '.join(a)})",
    "concat": lambda n, a, t: f"tf.concat([{', '.join(a)}], axis={n.attrs['axis']})",
    "reshape": lambda n, a, t: f"tf.reshape({a[0]}, {reshape_target(n, t, f'tf.shape({a[0]})[0]')})",
    "transpose": lambda n, a, t: f"tf.transpose({a[0]}, {list(transpose_perm(n, t))})",
    "sum": _reduce("reduce_sum"),
    "mean": _reduce("reduce_mean"),
    "max": _reduce("reduce_max"),
    "where": lambda n, a, t: f"tf.where({a[0]}, {a[1]}, {a[2]})",
    "sin": _fn("tf.sin"),
    "cos": _fn("tf.cos"),
    "erf": _fn("tf.math.erf"),
    "silu": _fn("tf.nn.silu"),
    "selu": _fn("_selu"),
    "relu6": _fn("tf.nn.relu6"),  # gradient 0 at 0 and 6
    "clip": lambda n, a, t: f"tf.clip_by_value({a[0]}, {n.attrs['min']!r}, {n.attrs['max']!r})",
    "gelu": lambda n, a, t: f"tf.nn.gelu({a[0]}, approximate={n.attrs['approximate']!r})",
    "leaky_relu": lambda n, a, t: f"tf.nn.leaky_relu({a[0]}, alpha={n.attrs['negative_slope']!r})",
    "log_softmax": lambda n, a, t: f"tf.nn.log_softmax({a[0]}, axis={n.attrs['axis']})",
    "pow": _fn2("tf.pow"),
}


# -- non-float values, shape and index ops (issue 12, items 5-6) ---------------------------------


def _gather(x: Any, idx: Any, axis: int, xb: bool, ib: bool) -> Any:
    """``take`` per example (see the numpy engine); indices out of [0, n) are clamped: inside a
    ``tf.function`` their values are unknown, and ``tf.gather`` itself errs on CPU but returns zeros on
    GPU (docs/decisions.md)."""
    x = tf.convert_to_tensor(x)
    rank = len(x.shape)
    pos = rank + axis
    idx = tf.clip_by_value(tf.convert_to_tensor(idx), 0, tf.shape(x, out_type=tf.int32)[pos] - 1)
    if ib and xb:
        return tf.gather(x, idx, axis=pos, batch_dims=1)
    out = tf.gather(x, idx, axis=pos)
    if not ib or xb:
        return out
    lead = len(idx.shape)  # the batch axis of the indices lands at ``pos``: move it first
    total = rank - 1 + lead
    return tf.transpose(out, [pos] + list(range(pos)) + list(range(pos + 1, total)))


def _argmax(x: Any, axis: int, keepdims: bool) -> Any:
    """The first maximum's index as int32."""
    out = tf.argmax(x, axis=axis, output_type=tf.int32)
    return tf.expand_dims(out, axis) if keepdims else out


_TF_DTYPES = {"float32": "tf.float32", "float64": "tf.float64", "bool": "tf.bool", "int32": "tf.int32"}

NAMESPACE.update({"_gather": _gather, "_argmax": _argmax})
EMITTERS.update(
    {
        "cast": lambda n, a, t: f"tf.cast({a[0]}, {_TF_DTYPES[n.attrs['dtype']]})",
        "expand_dims": lambda n, a, t: f"tf.expand_dims({a[0]}, {n.attrs['axis']})",
        "squeeze": lambda n, a, t: f"tf.squeeze({a[0]}, axis={list(n.attrs['axes'])})",
        "min": _reduce("reduce_min"),
        "argmax": lambda n, a, t: f"_argmax({a[0]}, {n.attrs['axis']}, {n.attrs['keepdims']})",
        "logsumexp": _reduce("reduce_logsumexp"),
        "cumsum": lambda n, a, t: (
            f"tf.math.cumsum({a[0]}, axis={n.attrs['axis']}, exclusive={n.attrs['exclusive']}, "
            f"reverse={n.attrs['reverse']})"
        ),
        "gather": lambda n, a, t: f"_gather({a[0]}, {a[1]}, {n.attrs['axis']}, {t[0].batched}, {t[1].batched})",
    }
)
