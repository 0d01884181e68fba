"""The numpy engine's layer object: inference only, float32 or float64."""

from __future__ import annotations

import numpy as np

from ..lowered import Lowered
from . import loop


class NumpyLayer(Lowered):
    """The reference implementation of a lowered :class:`~rshop_core.RecurrentModel`."""

    engine = "numpy"
    _native = (np.ndarray,)

    def __init__(self, model, dtype, engine, passes=None, fast_path=True, **hooks):
        super().__init__(model, dtype, engine, passes, fast_path, **hooks)
        self.params = self.initial_weights()

    def _describe(self, a):
        return tuple(a.shape), a.dtype.name

    def _from_numpy(self, a):
        return np.asarray(a)

    def _broadcast(self, v, batch, like):
        return np.broadcast_to(v, (batch,) + v.shape).copy()

    def _shift(self, seq, first, backwards):
        if backwards:
            return np.concatenate([seq[:, 1:], first[:, None]], axis=1)
        return np.concatenate([first[:, None], seq[:, :-1]], axis=1)

    def _lengths_to_mask(self, lengths, steps, like):
        return np.arange(steps)[None, :] < lengths[:, None]

    def _detach(self, v):
        return v

    def _sum_abs(self, v):
        return np.abs(v).sum()

    def _sum_square(self, v):
        return np.square(v).sum()

    def _flip_time(self, y):
        return np.ascontiguousarray(y[:, ::-1])

    def _concat_last(self, a, b):
        return np.concatenate([a, b], axis=-1)

    def _param_dict(self):
        return self.params

    def _loop(self, plan, P, xs, states, consts, steps):
        P, xs = self._prelude(plan, P, xs)

        def sequential():
            return loop.scan(self._step(plan), P, xs, states, consts, plan.options, steps)

        return self._parallel_or(plan, P, xs, states, consts, steps, sequential)

    def _read_weights(self):
        return self.params

    def _write_weights(self, weights):
        self.params = weights
