"""The jax engine's layer object: a plain Python object with a pure ``apply``.

``x``: (batch, T, *input_shape) jax array (tracers included). ``layer.params`` is a dict
(a pytree) qualified name -> jax array. ``layer.apply(params, x, initial_state=None,
constants=None)`` is pure, so it composes with ``jax.jit``, ``jax.grad`` and ``jax.vmap``;
``layer(x, ...)`` is ``apply(layer.params, x, ...)``. Both run the engine-neutral call
checks (shapes and dtypes are static under tracing) and one cached ``jax.jit`` of the loop.

Frozen parameters (``trainable=False``) are passed through ``jax.lax.stop_gradient`` inside
``apply``: ``jax.grad`` w.r.t. ``params`` gives them exact zeros, so an optimizer step
leaves them unchanged. Their names are in ``layer.frozen``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from rshop_core.errors import RshopEngineError
from rshop_core.model import check_weights

from ..lowered import Lowered
from . import loop


def _require_x64(model, dtype):
    if dtype == "float64" and not jax.config.jax_enable_x64:
        raise RshopEngineError(
            f"jax layer of RecurrentModel {model.name!r}, dtype: expected float32, or float64 with "
            "64-bit jax enabled, received dtype='float64' while jax_enable_x64 is off. Run "
            'jax.config.update("jax_enable_x64", True) at startup (before creating arrays), '
            "or lower with dtype='float32'.")


class JaxLayer(Lowered):
    """A lowered :class:`~rshop_core.RecurrentModel` running on jax (float32, or float64 under x64)."""

    engine = "jax"
    _native = (jax.Array,)  # tracers are jax.Array instances too
    _native_names = "jax.Array"

    def __init__(self, model, dtype, engine_module):
        _require_x64(model, dtype)
        self._setup(model, dtype, engine_module)
        self.frozen = frozenset(k for k, p in model.graph.params.items() if not p.trainable)
        self.params = {k: jnp.asarray(v) for k, v in self.initial_weights().items()}
        self._jit = jax.jit(self._forward)

    def __repr__(self):
        return (f"<JaxLayer of RecurrentModel {self.model.name!r} dtype {self.dtype} "
                f"params {list(self.params)}>")

    # -- running -------------------------------------------------------------------
    def apply(self, params, x, initial_state=None, constants=None):
        """Pure forward pass with ``params`` (same names, shapes and dtype as ``self.params``)."""
        states, consts = self._check(x, initial_state, constants)
        self._check_params(params)
        if states is None:
            states = self._initial_states(self._describe(x)[0][0])
        return self._jit(params, x, list(states), list(consts))

    def _forward(self, params, x, states, consts):
        P = {k: jax.lax.stop_gradient(v) if k in self.frozen else v for k, v in params.items()}
        ys, states = loop.scan(self.step_fn, P, x, states, consts, self.options)
        return self._result(ys, states)

    def _check_params(self, params):
        check_weights(f"jax layer of RecurrentModel {self.model.name!r}, argument params",
                      self.model.graph.params, params, self.dtype, self._describe)

    # -- Lowered hooks ---------------------------------------------------------------
    def _describe(self, a):
        return tuple(a.shape), np.dtype(a.dtype).name

    def _initial_states(self, batch):
        return [jnp.broadcast_to(jnp.asarray(v), (batch,) + v.shape) for v in self._state_values]

    def _run(self, x, states, consts):
        return self._jit(self.params, x, states, consts)

    def _read_weights(self):
        return self.params

    def _write_weights(self, weights):
        self.params = {k: jnp.asarray(v) for k, v in weights.items()}
