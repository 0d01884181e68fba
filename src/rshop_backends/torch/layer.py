"""The torch engine's layer object: a trainable ``torch.nn.Module``.

``TorchLayer(x, initial_state=None, constants=None, **kwargs)`` with ``x`` a tensor of
shape (batch, T, *input_shape) (or (batch, *input_shape) with ``decode``) returns, like
every engine, the output ((batch, T, ...) with ``return_sequences``, else (batch, ...)) or
``(y, *states)`` with ``return_states``. The keyword arguments (masks, sequence lengths,
teacher forcing, ``training``, ``output_length``) are those of
:class:`~rshop_backends.lowered.Lowered`; the call runs through ``nn.Module.__call__``.
``training`` defaults to the module's mode (``.train()`` / ``.eval()``), as for
``nn.Dropout``: a freshly lowered layer is in train mode.

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

from rshop_core import patterns
from rshop_core.errors import RshopConfigError, RshopEngineError

from ..lowered import Lowered
from . import fused, loop

_ANCHOR = "_rshop_anchor"  # an empty, non-persistent buffer that follows the module's moves


def _dtype_name(dt: torch.dtype) -> str:
    return str(dt).rpartition(".")[2]


def _moved(step, anchor):
    """``step`` with its literals (``_c*`` globals) on ``anchor``'s device, floats in its dtype."""
    g = dict(step.__globals__)
    moved = False
    for k, v in g.items():
        if k.startswith("_c") and isinstance(v, torch.Tensor):
            dt = anchor.dtype if v.is_floating_point() else v.dtype
            if v.device != anchor.device or v.dtype != dt:
                g[k] = v.to(device=anchor.device, dtype=dt)
                moved = True
    if not moved:
        return step
    out = types.FunctionType(step.__code__, g, step.__name__)
    out.__rshop_source__ = step.__rshop_source__
    return out


class TorchLayer(nn.Module, Lowered):
    """A lowered :class:`~rshop_core.RecurrentModel` as a ``torch.nn.Module``.

    Calls go through ``nn.Module.__call__`` (hooks run) and then :meth:`forward`, which
    does the engine-neutral checks of :class:`~rshop_backends.lowered.Lowered`.
    """

    engine = "torch"
    _native = (torch.Tensor,)

    def __init__(self, model, dtype, engine_module, passes=None, fast_path=True):
        nn.Module.__init__(self)
        # the anchor first: _setup compiles the inference step, which reads the layer's device
        self.register_buffer(_ANCHOR, torch.empty(0, dtype=getattr(torch, dtype)), persistent=False)
        self._steps: dict = {}  # (plan key, device, dtype) -> step with literals on that device
        self._setup(model, dtype, engine_module, passes, fast_path)
        weights = self.initial_weights()
        for q, spec in model.param_specs.items():
            p = nn.Parameter(torch.from_numpy(weights[q]), requires_grad=spec.trainable)
            self.register_parameter(q, p)

    def extra_repr(self) -> str:
        return f"model={self.model.name!r}, dtype={self.dtype}, options={self.options.to_json()}"

    # -- calling ------------------------------------------------------------------
    def forward(self, x, initial_state=None, constants=None, *, training=None, **kwargs):
        """What :meth:`Lowered.__call__` does, on the module's current parameters.

        ``training`` (dropout on; teacher forcing with ``ground_truth``) follows the module's
        mode, ``self.training`` (``.train()`` / ``.eval()``; a new module is in train mode, as
        for every ``nn.Module``), unless given. The other keyword arguments (``mask``,
        ``sequence_lengths``, ``ground_truth``, ``initial_readout``, ``output_length``) are
        those of :meth:`Lowered._call`.
        """
        if training is None and self.training:
            try:
                return self._call(self._parameters, x, initial_state, constants, training=True, **kwargs)
            except RshopConfigError as e:
                missing = "argument ground_truth: expected the targets" in str(e)
                if kwargs.get("ground_truth") is not None or not missing:
                    raise
                # a teacher-forced model, in train mode only because modules start there: say how to leave it
                raise RshopConfigError(f"{e} This torch layer follows its module mode (train mode, as every new "
                                       "nn.Module): call layer.eval() for inference.") from None
        return self._call(self._parameters, x, initial_state, constants,
                          training=self.training if training is None else bool(training), **kwargs)

    # -- Lowered hooks ---------------------------------------------------------------
    @property
    def _anchor(self):
        return getattr(self, _ANCHOR)

    def _describe(self, a):
        return tuple(a.shape), _dtype_name(a.dtype)

    def _info(self, arr, what):
        """Beyond the type: a dense tensor on the layer's device (sparse, nested or mkldnn tensors
        and other devices would fail deep inside torch, or run elsewhere than the layer)."""
        if not isinstance(arr, torch.Tensor):
            return super()._info(arr, what)  # the engine-neutral "expected torch.Tensor" error
        if arr.is_nested:
            raise RshopEngineError(
                f"{self._where}, {what}: expected a dense (torch.strided) tensor, received a nested one. Pad it "
                "(torch.nested.to_padded_tensor) and pass sequence_lengths= or mask=.")
        if arr.layout != torch.strided:
            raise RshopEngineError(
                f"{self._where}, {what}: expected a dense (torch.strided) tensor, received layout {arr.layout}. "
                "Convert it with .to_dense() first.")
        device = self._anchor.device
        if arr.device != device:
            raise RshopEngineError(
                f"{self._where}, {what}: expected a tensor on the layer's device {device}, received one on "
                f"{arr.device}. Move the tensor with .to({str(device)!r}), or the layer with "
                f"layer.to({str(arr.device)!r}).")
        return super()._info(arr, what)

    def _from_numpy(self, a):
        # a copy: numpy may hand over read-only views (broadcasts), which torch warns about
        return torch.from_numpy(np.array(a)).to(self._anchor.device)

    def _zeros(self, shape, batch, like):
        self._need_batch(batch, "zero states")
        return torch.zeros((batch,) + tuple(shape), dtype=self._anchor.dtype, device=self._anchor.device)

    def _broadcast(self, v, batch, like):
        if batch is None:
            batch = like.shape[0]
        # expand + clone: an independent tensor whose gradient flows back into ``v``
        return v.expand((batch,) + tuple(v.shape)).clone()

    def _shift(self, seq, first, backwards):
        if backwards:
            return torch.cat([seq[:, 1:], first[:, None]], dim=1)
        return torch.cat([first[:, None], seq[:, :-1]], dim=1)

    def _lengths_to_mask(self, lengths, steps, like):
        return torch.arange(steps, device=lengths.device)[None, :] < lengths[:, None]

    def _detach(self, v):
        return v.detach()

    def _sum_abs(self, v):
        return v.abs().sum()

    def _sum_square(self, v):
        return v.square().sum()

    def _flip_time(self, y):
        return torch.flip(y, dims=(1,))

    def _concat_last(self, a, b):
        return torch.cat([a, b], dim=-1)

    def _param_dict(self):
        # the module's current parameters, read at call time, keyed by qualified name
        return self._parameters

    def _loop(self, plan, P, xs, states, consts, steps):
        if plan.fused is not None:
            return fused.run(plan.fused, P, xs[0], states, plan.options)
        P, xs = self._prelude(plan, P, xs)
        return loop.scan(self._step(plan), P, xs, states, consts, plan.options, steps)

    def _fused(self, plan):
        """A plan that is a stack of standard cells runs on torch's fused kernels (:mod:`.fused`)."""
        if not self.fast_path:
            return super()._fused(plan)
        if plan.options.remat:
            return None, "remat was requested (the fused kernels keep their own activations)"
        return patterns.recognize(plan)

    def _fused_kernel_name(self, match) -> str:
        return " -> ".join(f"torch.{m.kind}" for m in match.layers) + f" ({match.describe()})"

    def _compiled(self, plan, part):
        """A generated function of the plan, with its literals on the anchor's device and dtype."""
        anchor = self._anchor
        key = (plan.key, part, anchor.device, anchor.dtype)
        fn = self._steps.get(key)
        if fn is None:
            fn = self._steps[key] = _moved(super()._compiled(plan, part), anchor)
        return fn

    # -- device / dtype moves -------------------------------------------------------
    def _apply(self, fn, *args, **kwargs):
        out = super()._apply(fn, *args, **kwargs)
        self._rebind()
        if self._carried is not None:  # stateful: the carried states follow the move
            self._carried = [fn(c) for c in self._carried]
        return out

    def _rebind(self):
        """Follow a move: compute in (and check arguments against) the anchor's dtype."""
        self.dtype = _dtype_name(self._anchor.dtype)

    # -- weights ----------------------------------------------------------------------
    def _read_weights(self):
        return {q: p.detach().cpu().numpy() for q, p in self._parameters.items()}

    def _write_weights(self, weights):
        with torch.no_grad():
            for q, p in self._parameters.items():
                p.copy_(torch.from_numpy(np.ascontiguousarray(weights[q])))
