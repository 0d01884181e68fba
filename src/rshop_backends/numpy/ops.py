"""The numpy reference engine's spelling of every op (float64 capable)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from rshop_core.checks import check_indices

from ..codegen import Emitter, einsum_equation, reshape_target, split_cuts, transpose_perm
from .special import erf as _erf


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # exact, and never overflows


def _softmax(x: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def _hard_sigmoid(x: np.ndarray) -> np.ndarray:
    return np.clip(x / 6.0 + 0.5, 0.0, 1.0)


def _elu(x: np.ndarray) -> np.ndarray:
    return np.where(x > 0, x, np.expm1(np.minimum(x, 0)))


SELU_ALPHA = 1.6732632423543772848170429916717  # Klambauer et al. 2017, as in Keras, torch and jax
SELU_SCALE = 1.0507009873554804934193349852946


def _gelu(x: np.ndarray, approximate: bool) -> np.ndarray:
    if approximate:
        return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))
    return 0.5 * x * (1.0 + _erf(x * math.sqrt(0.5)))


def _selu(x: np.ndarray) -> np.ndarray:
    return SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * np.expm1(np.minimum(x, 0)))


def _log_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    z = x - np.max(x, axis=axis, keepdims=True)
    return z - np.log(np.sum(np.exp(z), axis=axis, keepdims=True))


NAMESPACE: dict[str, Any] = {
    "np": np,
    "_sigmoid": _sigmoid,
    "_softmax": _softmax,
    "_hard_sigmoid": _hard_sigmoid,
    "_elu": _elu,
    "_erf": _erf,
    "_gelu": _gelu,
    "_selu": _selu,
    "_log_softmax": _log_softmax,
}


def constant(value: np.ndarray) -> np.ndarray:
    """A literal of the generated step."""
    return np.asarray(value)


def _fn(name: str) -> Emitter:
    return lambda n, a, t: f"{name}({a[0]})"


EMITTERS: dict[str, Emitter] = {
    "abs": _fn("np.abs"),
    "sqrt": _fn("np.sqrt"),
    "exp": _fn("np.exp"),
    "log": _fn("np.log"),
    "tanh": _fn("np.tanh"),
    "sigmoid": _fn("_sigmoid"),
    "hard_sigmoid": _fn("_hard_sigmoid"),
    "relu": lambda n, a, t: f"np.maximum({a[0]}, 0)",
    "softplus": lambda n, a, t: f"np.logaddexp(0, {a[0]})",
    "softsign": lambda n, a, t: f"({a[0]} / (1 + np.abs({a[0]})))",
    "elu": _fn("_elu"),
    "maximum": lambda n, a, t: f"np.maximum({a[0]}, {a[1]})",
    "minimum": lambda n, a, t: f"np.minimum({a[0]}, {a[1]})",
    "softmax": lambda n, a, t: f"_softmax({a[0]}, {n.attrs['axis']})",
    "einsum": lambda n, a, t: f"np.einsum({einsum_equation(n, t)!r}, {', '.join(a)})",
    "concat": lambda n, a, t: f"np.concatenate(({', '.join(a)},), axis={n.attrs['axis']})",
    "reshape": lambda n, a, t: f"{a[0]}.reshape({reshape_target(n, t, f'{a[0]}.shape[0]')})",
    "transpose": lambda n, a, t: f"np.transpose({a[0]}, {transpose_perm(n, t)})",
    "sum": lambda n, a, t: f"np.sum({a[0]}, axis={tuple(n.attrs['axes'])}, keepdims={n.attrs['keepdims']})",
    "mean": lambda n, a, t: f"np.mean({a[0]}, axis={tuple(n.attrs['axes'])}, keepdims={n.attrs['keepdims']})",
    "max": lambda n, a, t: f"np.max({a[0]}, axis={tuple(n.attrs['axes'])}, keepdims={n.attrs['keepdims']})",
    "where": lambda n, a, t: f"np.where({a[0]}, {a[1]}, {a[2]})",
    "split": lambda n, a, t: f"np.split({a[0]}, {split_cuts(n)}, axis={n.attrs['axis']})",
    "sin": _fn("np.sin"),
    "cos": _fn("np.cos"),
    "erf": _fn("_erf"),
    "silu": lambda n, a, t: f"({a[0]} * _sigmoid({a[0]}))",
    "selu": _fn("_selu"),
    "relu6": lambda n, a, t: f"np.clip({a[0]}, 0, 6)",
    "clip": lambda n, a, t: f"np.clip({a[0]}, {n.attrs['min']!r}, {n.attrs['max']!r})",
    "gelu": lambda n, a, t: f"_gelu({a[0]}, {n.attrs['approximate']!r})",
    "leaky_relu": lambda n, a, t: f"np.where({a[0]} > 0, {a[0]}, {a[0]} * {n.attrs['negative_slope']!r})",
    "log_softmax": lambda n, a, t: f"_log_softmax({a[0]}, {n.attrs['axis']})",
    "pow": lambda n, a, t: f"np.power({a[0]}, {a[1]})",
}


# -- non-float values, shape and index ops (issue 12, items 5-6) ---------------------------------


def _logsumexp(x: np.ndarray, axis: tuple[int, ...], keepdims: bool) -> np.ndarray:
    """``log(sum(exp(x)))`` with the maximum taken out first (an all -inf slice gives -inf, not NaN)."""
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis)


def _cumsum(x: np.ndarray, axis: int, reverse: bool, exclusive: bool) -> np.ndarray:
    """Running sum along ``axis`` in ``x``'s dtype; ``exclusive`` shifts it one place (0 first)."""
    x = np.flip(x, axis) if reverse else x
    c = np.cumsum(x, axis=axis, dtype=x.dtype)
    if exclusive:
        n = c.shape[axis]
        c = np.concatenate([np.zeros_like(np.take(c, [0], axis=axis)), np.take(c, range(n - 1), axis=axis)], axis)
    return np.flip(c, axis) if reverse else c


def _gather(x: np.ndarray, idx: np.ndarray, axis: int, xb: bool, ib: bool, where: str) -> np.ndarray:
    """``take`` per example: ``axis`` is negative; ``xb``/``ib``: whether ``x`` / ``idx`` carry the batch."""
    idx = np.asarray(idx)
    check_indices(idx, x.shape[axis], axis, where)
    if not ib:
        return np.take(x, idx, axis=axis)
    if not xb:  # a table read by every example: the batch axis of the result comes first
        return np.moveaxis(np.take(x, idx, axis=axis), x.ndim + axis, 0)
    pos = x.ndim + axis
    pre, post = x.shape[1:pos], x.shape[pos + 1 :]
    flat = idx.reshape((idx.shape[0],) + (1,) * len(pre) + (-1,) + (1,) * len(post))
    out = np.take_along_axis(x, flat, axis=pos)
    return out.reshape((x.shape[0],) + pre + idx.shape[1:] + post)


NAMESPACE.update({"_logsumexp": _logsumexp, "_cumsum": _cumsum, "_gather": _gather})
EMITTERS.update(
    {
        "cast": lambda n, a, t: f"np.asarray({a[0]}).astype({n.attrs['dtype']!r})",
        "expand_dims": lambda n, a, t: f"np.expand_dims({a[0]}, {n.attrs['axis']})",
        "squeeze": lambda n, a, t: f"np.squeeze({a[0]}, axis={tuple(n.attrs['axes'])})",
        "min": lambda n, a, t: f"np.min({a[0]}, axis={tuple(n.attrs['axes'])}, keepdims={n.attrs['keepdims']})",
        "argmax": lambda n, a, t: (
            f"np.argmax({a[0]}, axis={n.attrs['axis']}, keepdims={n.attrs['keepdims']}).astype('int32')"
        ),
        "logsumexp": lambda n, a, t: f"_logsumexp({a[0]}, {tuple(n.attrs['axes'])}, {n.attrs['keepdims']})",
        "cumsum": lambda n, a, t: f"_cumsum({a[0]}, {n.attrs['axis']}, {n.attrs['reverse']}, {n.attrs['exclusive']})",
        "gather": lambda n, a, t: (
            f"_gather({a[0]}, {a[1]}, {n.attrs['axis']}, {t[0].batched}, {t[1].batched}, "
            f"{f'node {n.name!r} (op gather)'!r})"
        ),
    }
)
