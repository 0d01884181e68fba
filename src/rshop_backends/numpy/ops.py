"""The numpy reference engine's spelling of every op (float64 capable)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..codegen import Emitter, einsum_equation, reshape_shape, split_cuts, transpose_perm


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # exact, and never overflows


def _softmax(x: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def _hard_sigmoid(x: np.ndarray) -> np.ndarray:
    return np.clip(x / 6.0 + 0.5, 0.0, 1.0)


def _elu(x: np.ndarray) -> np.ndarray:
    return np.where(x > 0, x, np.expm1(np.minimum(x, 0)))


NAMESPACE: dict[str, Any] = {
    "np": np,
    "_sigmoid": _sigmoid,
    "_softmax": _softmax,
    "_hard_sigmoid": _hard_sigmoid,
    "_elu": _elu,
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
    "reshape": lambda n, a, t: f"{a[0]}.reshape({reshape_shape(n, t)})",
    "transpose": lambda n, a, t: f"np.transpose({a[0]}, {transpose_perm(n, t)})",
    "sum": lambda n, a, t: f"np.sum({a[0]}, axis={tuple(n.attrs['axes'])}, keepdims={n.attrs['keepdims']})",
    "mean": lambda n, a, t: f"np.mean({a[0]}, axis={tuple(n.attrs['axes'])}, keepdims={n.attrs['keepdims']})",
    "max": lambda n, a, t: f"np.max({a[0]}, axis={tuple(n.attrs['axes'])}, keepdims={n.attrs['keepdims']})",
    "where": lambda n, a, t: f"np.where({a[0]}, {a[1]}, {a[2]})",
    "split": lambda n, a, t: f"np.split({a[0]}, {split_cuts(n)}, axis={n.attrs['axis']})",
}
