"""The torch engine's layer object: a trainable ``torch.nn.Module``.

``TorchLayer(x, initial_state=None, constants=None)`` with ``x`` a tensor of shape
(batch, T, *input_shape) returns, like every engine, the output ((batch, T, ...) with
``return_sequences``, else (batch, ...)) or ``(y, *states)`` with ``return_states``.

Parameters are ``nn.Parameter``s registered under their qualified names
(``"lstm_cell/kernel"``), so ``state_dict()`` keys and ``named_parameters()`` names are
the rshop names (torch forbids ``.`` in them; rshop names never hold one).
A ``trainable=False`` parameter has ``requires_grad=False``.

The step reads parameters from the module at every call, so ``.to(device)``,
``.double()``, ``load_state_dict`` and optimizers all act on what runs. After a dtype
move (``.double()``) the layer computes in, and checks its arguments against, the new
dtype.
"""

from __future__ import annotations

import types

import numpy as np
import torch
from torch import nn

from ..lowered import Lowered
from . import loop

_ANCHOR = "_rshop_anchor"  # an empty, non-persistent buffer that follows the module's moves


def _dtype_name(dt: torch.dtype) -> str:
    return str(dt).rpartition(".")[2]


class TorchLayer(nn.Module, Lowered):
    """A lowered :class:`~rshop_core.RecurrentModel` as a ``torch.nn.Module``.

    Calls go through ``nn.Module.__call__`` (hooks run) and then :meth:`forward`, which
    does the engine-neutral checks of :class:`~rshop_backends.lowered.Lowered`.
    """

    engine = "torch"
    _native = (torch.Tensor,)

    def __init__(self, model, dtype, engine_module):
        nn.Module.__init__(self)
        self._setup(model, dtype, engine_module)
        self._step = self.step_fn
        self.register_buffer(_ANCHOR, torch.empty(0, dtype=getattr(torch, dtype)), persistent=False)
        weights = self.initial_weights()
        for q, spec in model.graph.params.items():
            p = nn.Parameter(torch.from_numpy(weights[q]), requires_grad=spec.trainable)
            self.register_parameter(q, p)
        self._state_cache: dict = {}

    def extra_repr(self) -> str:
        return f"model={self.model.name!r}, dtype={self.dtype}, options={self.options.to_json()}"

    # -- calling ------------------------------------------------------------------
    def forward(self, x, initial_state=None, constants=None):
        """What :meth:`Lowered.__call__` does, with initial states made on ``x``'s device."""
        states, consts = self._check(x, initial_state, constants)
        if states is None:
            states = self._initial_states(x.shape[0], x)
        return self._run(x, list(states), list(consts))

    def _describe(self, a):
        return tuple(a.shape), _dtype_name(a.dtype)

    def _initial_states(self, batch, like=None):
        """Each state initializer's value, (batch, *shape), on ``like``'s device and dtype."""
        like = getattr(self, _ANCHOR) if like is None else like
        key = (like.device, like.dtype)
        per_example = self._state_cache.get(key)
        if per_example is None:
            per_example = [torch.as_tensor(v, dtype=like.dtype, device=like.device)
                           for v in self._state_values]
            self._state_cache[key] = per_example
        return [v.expand((batch,) + tuple(v.shape)).clone() for v in per_example]

    def _run(self, x, states, consts):
        # the module's current parameters, read at call time, keyed by qualified name
        ys, states = loop.scan(self._step, self._parameters, x, states, consts, self.options)
        return self._result(ys, states)

    # -- device / dtype moves -------------------------------------------------------
    def _apply(self, fn, *args, **kwargs):
        out = super()._apply(fn, *args, **kwargs)
        self._rebind()
        return out

    def _rebind(self):
        """Follow a move: compute in the anchor's dtype, with literals on its device."""
        anchor = getattr(self, _ANCHOR)
        self.dtype = _dtype_name(anchor.dtype)
        g = dict(self.step_fn.__globals__)
        moved = False
        for k, v in g.items():
            if k.startswith("_c") and isinstance(v, torch.Tensor):
                dt = anchor.dtype if v.is_floating_point() else v.dtype
                if v.device != anchor.device or v.dtype != dt:
                    g[k] = v.to(device=anchor.device, dtype=dt)
                    moved = True
        if moved:
            step = types.FunctionType(self.step_fn.__code__, g, "step")
            step.__rshop_source__ = self.step_fn.__rshop_source__
            self._step = step
        else:
            self._step = self.step_fn

    # -- weights ----------------------------------------------------------------------
    def _read_weights(self):
        return {q: p.detach().cpu().numpy() for q, p in self._parameters.items()}

    def _write_weights(self, weights):
        with torch.no_grad():
            for q, p in self._parameters.items():
                p.copy_(torch.from_numpy(np.ascontiguousarray(weights[q])))
