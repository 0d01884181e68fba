"""What every engine's layer object shares: call checks, results, weights.

An engine's layer class mixes in :class:`Lowered` and implements five hooks:
``_describe(array) -> (shape, dtype)`` for its native arrays, ``_native`` (the array
type(s) it accepts), ``_initial_states(batch)``, ``_run(x, states, consts)`` and the
weight accessors ``_read_weights()`` / ``_write_weights(dict)``.
"""

from __future__ import annotations

import numpy as np

from rshop_core.checks import check_call
from rshop_core.errors import RshopEngineError, RshopNotImplementedError
from rshop_core.model import check_weights

from . import codegen


def compiled_step(model, engine_module, dtype: str):
    """The generated step of ``model`` for an engine, cached per (engine, dtype) on the model."""
    key = (engine_module.NAME, dtype)
    cache = model._lowered_cache
    if key not in cache:
        ops = engine_module.ops
        cache[key] = codegen.generate(model.graph, ops.EMITTERS, ops.NAMESPACE, ops.constant, dtype,
                                      engine_module.NAME)
    return cache[key]


def initial_state_values(model, dtype: str) -> list:
    """Per-example numpy values of every state initializer (deterministic ones only)."""
    out = []
    for s in model.state_specs:
        if s.initializer.random:
            raise RshopNotImplementedError(
                f"state {s.name!r}: expected a deterministic state initializer, received "
                f"{s.initializer!r}; seeded random initial states are not implemented yet.")
        out.append(s.initializer(s.shape, dtype))
    return out


class Lowered:
    """Mixin for engine layer objects. ``layer(x, initial_state=None, constants=None)``.

    ``x``: (batch, T, *input_shape). Returns the output ((batch, T, ...) with
    ``return_sequences``, else the last step's), followed by the final states as a
    tuple ``(y, *states)`` when ``return_states``; a model with several outputs returns
    them all first.
    """

    engine: str = "?"
    _native: tuple = ()  # the array types this engine accepts
    _native_names: str = ""  # how error messages name them (default: module.qualname)

    def _setup(self, model, dtype, engine_module):
        self.model, self.dtype, self.options = model, dtype, model.options
        self.step_fn = compiled_step(model, engine_module, dtype)
        self._state_values = initial_state_values(model, dtype)

    # -- checks -----------------------------------------------------------------
    def _info(self, arr, what):
        if not isinstance(arr, self._native):
            want = self._native_names or " or ".join(f"{t.__module__}.{t.__qualname__}" for t in self._native)
            raise RshopEngineError(
                f"{self.engine} layer of RecurrentModel {self.model.name!r}, {what}: expected {want}, "
                f"received {type(arr).__module__}.{type(arr).__qualname__}. Convert it to the "
                f"{self.engine} engine's arrays first.")
        return self._describe(arr)

    def _check(self, x, initial_state, constants):
        def listed(v, what):
            if v is None:
                return None
            if not isinstance(v, (list, tuple)):
                v = [v]
            return [self._info(a, f"{what} #{i}") for i, a in enumerate(v)], list(v)
        xi = self._info(x, "argument x")
        st = listed(initial_state, "initial state")
        ks = listed(constants, "constant")
        check_call(self.model, self.dtype, xi, st and st[0], ks and ks[0])
        return (st[1] if st else None), (ks[1] if ks else [])

    def __call__(self, x, initial_state=None, constants=None):
        states, consts = self._check(x, initial_state, constants)
        if states is None:
            states = self._initial_states(self._describe(x)[0][0])
        return self._run(x, list(states), list(consts))

    def _result(self, ys: list, states: list):
        out = list(ys)
        if self.options.return_states:
            out += list(states)
        return out[0] if len(out) == 1 else tuple(out)

    # -- weights ------------------------------------------------------------------
    def get_weights(self) -> dict:
        """The current parameters as numpy arrays keyed by qualified name."""
        return {k: np.array(v) for k, v in self._read_weights().items()}

    def set_weights(self, weights: dict) -> None:
        """Replace every parameter; names, shapes and dtypes must match (in ``self.dtype``)."""
        self._write_weights(check_weights(f"{self.engine} layer of RecurrentModel {self.model.name!r}",
                                          self.model.graph.params, weights, self.dtype))

    def initial_weights(self) -> dict:
        """The model's weights in this layer's dtype."""
        return {k: v.astype(self.dtype) for k, v in self.model._weights.items()}
