"""The numpy linear scan: the reference, a plain sequential loop in the arrays' dtype (no gradients).

``linear_scan(a, b, h0)`` is the meaning every other engine's parallel scan is checked against; see
:mod:`rshop_backends.scan_algorithms` for the forms and the parallel algorithm the other engines run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .. import scan_algorithms as alg
from ..parallel import eager_cond, eager_while_loop

__all__ = ["AUTO_MAX_STEP_ELEMENTS", "AUTO_MIN_STEPS", "linear_scan"]


def linear_scan(a: Any, b: Any, h0: Any) -> np.ndarray:
    """All states of h_t = a_t ∘ h_{t-1} + b_t, t = 1..T (time axis 1).

    Diagonal form: a, b (B, T, N), h0 (B, N) -> h (B, T, N), h_t = a_t * h_{t-1} + b_t.
    Block form:   a (B, T, G, k, k), b (B, T, G, k), h0 (B, G, k) -> h (B, T, G, k), h_t = a_t @ h_{t-1} + b_t
                  (matrix-vector per group). The form is told by a.ndim == b.ndim + 1.
    Computed step by step in the arrays' dtype::

        h = h0
        for t in range(T):
            h = a[:, t] ∘ h + b[:, t]
            out[:, t] = h
    """
    a, b, h0 = np.asarray(a), np.asarray(b), np.asarray(h0)
    block = alg.check_shapes(a.shape, b.shape, h0.shape, "numpy linear_scan")
    alg.check_dtypes(str(a.dtype), str(b.dtype), str(h0.dtype), "numpy linear_scan")
    out = np.empty_like(b)
    h = h0
    for t in range(b.shape[1]):
        h = alg.apply(a[:, t], h, block) + b[:, t]
        out[:, t] = h
    return out


# -- what the shared time-parallel driver uses (rshop_backends.parallel.ArrayOps) -------------
# "auto" on the reference engine runs the sequential definition; a parallel loop runs when asked for
AUTO_MIN_STEPS: int | None = None
AUTO_MAX_STEP_ELEMENTS: int | None = None


def reshape(a: Any, shape: Sequence[int]) -> np.ndarray:
    return np.reshape(a, tuple(shape))


def concat(arrays: Sequence[Any], axis: int) -> np.ndarray:
    return np.concatenate(list(arrays), axis=axis)


def stack(arrays: Sequence[Any], axis: int) -> np.ndarray:
    return np.stack(list(arrays), axis=axis)


def take(a: Any, index: np.ndarray) -> Any:
    return a[..., index]


def zeros_like(a: Any) -> np.ndarray:
    return np.zeros_like(a)


def repeat_time(a: Any, steps: int) -> np.ndarray:
    return np.broadcast_to(a[:, None], (a.shape[0], steps, *a.shape[1:]))


def stop_gradient(a: Any) -> Any:
    return a


def sum_last(a: Any) -> Any:
    return a.sum(-1)


def minus_product(f: Any, a: Any, v: Any) -> Any:
    return f - a * v


def max_change(new: Any, old: Any) -> Any:
    return np.max(np.abs(new - old), initial=0.0) / (1.0 + np.max(np.abs(new), initial=0.0))


EAGER = True
while_loop = eager_while_loop
cond = eager_cond


def report(callback: Callable[..., Any], *values: Any) -> None:
    callback(*values)
