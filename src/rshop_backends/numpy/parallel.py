"""The numpy linear scan: the reference, a plain sequential loop in the arrays' dtype (no gradients).

``linear_scan(a, b, h0)`` is the meaning every other engine's parallel scan is checked against; see
:mod:`rshop_backends.scan_algorithms` for the forms and the parallel algorithm the other engines run.
"""

from __future__ import annotations

import numpy as np

from .. import scan_algorithms as alg

__all__ = ["linear_scan"]


def linear_scan(a, b, h0):
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
