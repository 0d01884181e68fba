"""The numpy engine's layer object: inference only, float32 or float64."""

from __future__ import annotations

import numpy as np

from ..lowered import Lowered
from . import loop


class NumpyLayer(Lowered):
    """The reference implementation of a lowered :class:`~rshop_core.RecurrentModel`."""

    engine = "numpy"
    _native = (np.ndarray,)

    def __init__(self, model, dtype, engine_module):
        self._setup(model, dtype, engine_module)
        self.params = self.initial_weights()

    def _describe(self, a):
        return tuple(a.shape), a.dtype.name

    def _initial_states(self, batch):
        return [np.broadcast_to(v, (batch,) + v.shape).copy() for v in self._state_values]

    def _run(self, x, states, consts):
        ys, states = loop.scan(self.step_fn, self.params, x, states, consts, self.options)
        return self._result(ys, states)

    def _read_weights(self):
        return self.params

    def _write_weights(self, weights):
        self.params = weights
