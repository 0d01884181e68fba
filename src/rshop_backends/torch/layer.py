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

A new layer is built on torch's default device, as ``torch.nn.Linear`` is: the CPU unless
``torch.set_default_device("cuda")`` or ``with torch.device("cuda"):`` says otherwise.
The step reads parameters from the module at every call, so ``.to(device)``,
``.double()``, ``load_state_dict`` and optimizers all act on what runs. After a dtype
move (``.double()``) the layer computes in, and checks its arguments against, the new
dtype.
"""

from __future__ import annotations

import dataclasses
import types
import warnings
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from rshop_core import initializers, patterns
from rshop_core import passes as _passes
from rshop_core.errors import RshopConfigError, RshopEngineError, RshopNotImplementedError
from rshop_core.execution import plan_for

from ..lowered import Lowered
from . import fused, loop, transforms

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from rshop_core.checks import ArrayInfo
    from rshop_core.execution import Plan
    from rshop_core.lowerable import Lowerable
    from rshop_core.model import RecurrentModel, StateSpec
    from rshop_core.patterns import StackMatch

    from ..codegen import GeneratedStep
    from ..engine import EngineSpec
    from ..lowered import Explanation


_ANCHOR = "_rshop_anchor"  # an empty, non-persistent buffer that follows the module's moves


def _dtype_name(dt: torch.dtype) -> str:
    return str(dt).rpartition(".")[2]


def _moved(step: GeneratedStep, anchor: Any) -> GeneratedStep:
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
    out: Any = types.FunctionType(step.__code__, g, step.__name__)  # a GeneratedStep once its source is set
    out.__rshop_source__ = step.__rshop_source__
    return out


class TorchLayer(nn.Module, Lowered):
    """A lowered :class:`~rshop_core.RecurrentModel` as a ``torch.nn.Module``.

    Calls go through ``nn.Module.__call__`` (hooks run) and then :meth:`forward`, which
    does the engine-neutral checks of :class:`~rshop_backends.lowered.Lowered`.
    """

    engine = "torch"
    _native = (torch.Tensor,)

    def __init__(
        self,
        model: Lowerable,
        dtype: str,
        engine: EngineSpec,
        passes: Sequence[str] | None = None,
        fast_path: bool | str = True,
        **hooks: Any,
    ) -> None:
        nn.Module.__init__(self)
        # the anchor first: Lowered.__init__ compiles the inference step, which reads the layer's device
        self.register_buffer(_ANCHOR, torch.empty(0, dtype=getattr(torch, dtype)), persistent=False)
        self._steps: dict = {}  # (id of the plan, part, device, dtype) -> step with literals on that device
        Lowered.__init__(self, model, dtype, engine, passes, fast_path, **hooks)
        weights = self.initial_weights()
        device = self._anchor.device  # torch's default device, as for torch.nn.Linear
        for q, spec in model.param_specs.items():
            p = nn.Parameter(torch.from_numpy(weights[q]).to(device), requires_grad=spec.trainable)
            self.register_parameter(q, p)
        self._warm()

    def extra_repr(self) -> str:
        return f"model={self.model.name!r}, dtype={self.dtype}, options={self.options.to_json()}"

    # -- calling ------------------------------------------------------------------
    def forward(
        self, x: Any, initial_state: Any = None, constants: Any = None, *, training: bool | None = None, **kwargs: Any
    ) -> Any:
        """What :meth:`Lowered.__call__` does, on the module's current parameters.

        ``training`` (dropout on; teacher forcing with ``ground_truth``) follows the module's
        mode, ``self.training`` (``.train()`` / ``.eval()``; a new module is in train mode, as
        for every ``nn.Module``), unless given. The other keyword arguments (``mask``,
        ``sequence_lengths``, ``ground_truth``, ``initial_readout``, ``output_length``) are
        those of :meth:`Lowered._call`.
        """
        if isinstance(x, torch.fx.Proxy):
            raise RshopEngineError(
                f"{self._where}, argument x: expected a tensor, received a torch.fx Proxy. torch.fx.symbolic_trace "
                "cannot trace the layer's checks and loop (Python control flow over shapes); use torch.export."
            )
        if training is None and self.training:
            try:
                return self._call(self._parameters, x, initial_state, constants, training=True, **kwargs)
            except RshopConfigError as e:
                missing = "argument ground_truth: expected the targets" in str(e)
                if kwargs.get("ground_truth") is not None or not missing:
                    raise
                # a teacher-forced model, in train mode only because modules start there: say how to leave it
                raise RshopConfigError(
                    f"{e} This torch layer follows its module mode (train mode, as every new "
                    "nn.Module): call layer.eval() for inference."
                ) from None
        return self._call(
            self._parameters,
            x,
            initial_state,
            constants,
            training=self.training if training is None else bool(training),
            **kwargs,
        )

    # -- Lowered hooks ---------------------------------------------------------------
    @property
    def _anchor(self) -> Any:
        return getattr(self, _ANCHOR)

    def _describe(self, a: Any) -> tuple[tuple[int, ...], str]:  # a known shape
        return tuple(a.shape), _dtype_name(a.dtype)

    def _info(self, arr: Any, what: str) -> ArrayInfo:
        """Beyond the type: a dense tensor on the layer's device (sparse, nested or mkldnn tensors
        and other devices would fail deep inside torch, or run elsewhere than the layer)."""
        if not isinstance(arr, torch.Tensor):
            return super()._info(arr, what)  # the engine-neutral "expected torch.Tensor" error
        if arr.is_nested:
            raise RshopEngineError(
                f"{self._where}, {what}: expected a dense (torch.strided) tensor, received a nested one. Pad it "
                "(torch.nested.to_padded_tensor) and pass sequence_lengths= or mask=."
            )
        if arr.layout != torch.strided:
            raise RshopEngineError(
                f"{self._where}, {what}: expected a dense (torch.strided) tensor, received layout {arr.layout}. "
                "Convert it with .to_dense() first."
            )
        device = self._anchor.device
        if arr.device != device:
            raise RshopEngineError(
                f"{self._where}, {what}: expected a tensor on the layer's device {device}, received one on "
                f"{arr.device}. Move the tensor with .to({str(device)!r}), or the layer with "
                f"layer.to({str(arr.device)!r})."
            )
        return super()._info(arr, what)

    def _from_numpy(self, a: np.ndarray) -> Any:
        # a copy: numpy may hand over read-only views (broadcasts), which torch warns about
        return torch.from_numpy(np.array(a)).to(self._anchor.device)

    def _zeros(self, shape: tuple[int, ...], batch: int | None, like: Any) -> Any:
        self._need_batch(batch, "zero states")
        return torch.zeros((batch,) + tuple(shape), dtype=self._anchor.dtype, device=self._anchor.device)

    def _broadcast(self, v: Any, batch: int | None, like: Any) -> Any:
        if batch is None:
            batch = like.shape[0]
        # expand + clone: an independent tensor whose gradient flows back into ``v``
        return v.expand((batch,) + tuple(v.shape)).clone()

    def _shift(self, seq: Any, first: Any, backwards: bool) -> Any:
        if backwards:
            return torch.cat([seq[:, 1:], first[:, None]], dim=1)
        return torch.cat([first[:, None], seq[:, :-1]], dim=1)

    def _lengths_to_mask(self, lengths: Any, steps: int | None, like: Any) -> Any:
        return torch.arange(steps, device=lengths.device)[None, :] < lengths[:, None]

    def _lengths_guard(self, model: RecurrentModel, lengths: Any, steps: int | None, like: Any) -> tuple[Any, Any]:
        """Traced (torch.compile, jit.trace): rows with a length outside [0, T] come out as NaN."""
        return lengths, (lengths < 0) | (lengths > steps)

    def _poison(self, v: Any, bad: Any) -> Any:
        return torch.where(
            bad.reshape((-1,) + (1,) * (v.dim() - 1)), torch.full((), float("nan"), dtype=v.dtype, device=v.device), v
        )

    def _detach(self, v: Any) -> Any:
        return v.detach()

    def _sum_abs(self, v: Any) -> Any:
        return v.abs().sum()

    def _sum_square(self, v: Any) -> Any:
        return v.square().sum()

    def _norm(self, v: Any, axes: tuple[int, ...]) -> Any:
        return torch.sqrt(torch.sum(v * v, dim=axes, keepdim=True))

    def _clip(self, v: Any, lo: float, hi: float) -> Any:
        return torch.clamp(v, min=lo, max=hi)

    def _assign_params(self, values: dict[str, Any]) -> None:
        with torch.no_grad():
            for q, v in values.items():
                self._parameters[q].copy_(v)

    def _flip_time(self, y: Any) -> Any:
        return torch.flip(y, dims=(1,))

    def _to_host(self, a: Any) -> np.ndarray | None:
        """A numpy copy, or None when the values are not there to read: under a transform other than
        ``torch.func.grad`` (the call's ``_now``, where numpy draws would be frozen too), and for a
        tensor functorch has wrapped."""
        if transforms.in_graph_rng(self._now):
            return None
        try:
            a = a.detach().cpu()
            return (a.float() if a.dtype == torch.bfloat16 else a).numpy()
        except RuntimeError:  # a functorch-wrapped tensor (the differentiated input of torch.func.grad)
            return None

    def _concat_last(self, a: Any, b: Any) -> Any:
        return torch.cat([a, b], dim=-1)

    def _param_dict(self) -> dict[str, Any]:
        # the module's current parameters, read at call time, keyed by qualified name
        return self._parameters

    def _loop(
        self, plan: Plan, P: dict[str, Any], xs: list[Any], states: list[Any], consts: list[Any], steps: int | None
    ) -> tuple[Sequence[Any], Sequence[Any]]:
        assert steps is not None, "torch tensors have known shapes (a symbol for T under torch.export)"
        if plan.fused is not None:
            return fused.run(plan.fused, P, xs[0], states, plan.options)
        P, xs = self._prelude(plan, P, xs)
        if xs and self._now == "torch.export (dynamic T)":  # a Python loop would specialise T
            return loop.scan_op(self._step(plan), P, xs, states, consts, plan.options, steps)
        if self._now == "torch.jit.trace":
            warnings.warn(
                f"{self._where}: torch.jit.trace records the generic loop unrolled over this call's "
                f"{steps} time steps; the traced function is only valid for that T. Use torch.export "
                "with a dynamic T, or trace one trace per T.",
                torch.jit.TracerWarning,
                stacklevel=2,
            )

        def sequential() -> tuple[Sequence[Any], Sequence[Any]]:
            return loop.scan(self._step(plan), P, xs, states, consts, plan.options, steps)

        if self._now is not None:  # a transform traces the call: the parallel loop's Python control flow would not
            return sequential()
        return self._parallel_or(plan, P, xs, states, consts, steps, sequential)

    # -- torch transforms: what runs under torch.compile / export / jit.trace / torch.func ----------
    def _warm(self) -> None:
        """Build now, outside any trace, the plans and generated code of every kind of call (plain,
        training, teacher-forced, masked) and of their generic fallbacks: dynamo cannot trace the
        passes or the code generator, so a first call under ``torch.compile`` must find them built."""
        self._state_values: dict[tuple[int, str], Any] = {}
        for part in self._parts:
            for spec in part.state_specs:
                self._state_constant(part, spec)
            teach = (False, True) if part.options.teacher_force else (False,)
            masks = (False,) if part.options.decode else (False, True)  # decode has no time axis to mask
            for training, teacher, masked in [
                (tr, te and tr, m) for tr in (False, True) for te in teach for m in masks if tr or not te
            ]:
                try:
                    plans = [self._plan(part, training, teacher, masked)]
                except RshopNotImplementedError:  # fast_path='require' and a training call is not fused:
                    continue  # that call raises when it is made (the plain call was checked at lowering)
                if plans[0].fused is not None and self.fast_path != "require":
                    plans += [self._plan(part, training, teacher, masked, transform=t) for t in transforms.BLOCKED]
                for plan in plans:
                    if plan.fused is None:
                        self._step(plan)
                        for name in ("prologue", "hoisted"):
                            if getattr(plan, name) is not None:
                                self._compiled(plan, name)

    _now: str | None = None  # the transform running the current call (transforms.current), None when eager

    def _run_model(
        self, model: RecurrentModel, P: dict[str, Any], x: Any, *args: Any, **kwargs: Any
    ) -> tuple[list[Any], list[Any]]:
        self._now = transforms.current(x) if isinstance(x, torch.Tensor) else None
        try:
            return super()._run_model(model, P, x, *args, **kwargs)
        finally:
            self._now = None

    def _plan(
        self,
        model: RecurrentModel,
        training: bool,
        teacher: bool,
        masked: bool,
        grad: bool = False,
        transform: str | None = None,
    ) -> Plan:
        """The base plan, unless it is fused and the transform running the call (or ``transform``,
        for :meth:`explain`) cannot run torch's fused kernels: then the generic loop, and why."""
        plan = super()._plan(model, training, teacher, masked, grad)
        why = transforms.BLOCKED.get(transform or self._now, "")
        if plan.fused is None or not why:
            return plan
        key = (id(model), bool(training), bool(teacher), bool(masked), bool(grad), why)
        if key not in self._plans:
            if self.fast_path == "require":
                raise RshopNotImplementedError(
                    f"{self._where}: expected a call that runs on a fused kernel (fast_path='require'), received "
                    f"one under a transform that cannot: {why}. Call the layer eagerly, or lower it with "
                    "fast_path=True to let such calls run the generic loop."
                )
            raw = plan_for(model, bool(training), bool(teacher), bool(masked))
            generic = _passes.optimize(
                raw, self.grad_passes if grad else self.passes, self.cost_rule, self._engine_module.per_op_loop
            )
            self._plans[key] = replace(generic, note=why)
            self._leaf_of[id(self._plans[key])] = model
        return self._plans[key]

    def explain(
        self,
        training: bool = False,
        masked: bool = False,
        teacher: bool = False,
        grad: bool = False,
        transform: str | None = None,
    ) -> Explanation:
        """:meth:`Lowered.explain`, and with ``transform`` (one of :data:`transforms.NAMES`) for a call
        under that torch transform: which path it gets and why (a fused layer falls back to the
        generic loop where torch cannot run its fused kernels)."""
        if transform is not None and transform not in transforms.NAMES:
            raise RshopConfigError(
                f"{self._where}, explain argument transform: expected one of "
                f"{list(transforms.NAMES)}, received {transform!r}."
            )
        if transform in (None, "eager"):
            return super().explain(training, masked, teacher, grad)
        self._now = transform
        try:
            out = super().explain(training, masked, teacher, grad)
        finally:
            self._now = None
        path = out.path
        if transform == "torch.export (dynamic T)" and not path.startswith("fused"):
            path = "generic loop (generated step) in one torch scan higher-order op"
        elif transform == "torch.jit.trace" and not path.startswith("fused"):
            path = "generic loop (generated step), unrolled over the traced T (valid for that T only)"
        return dataclasses.replace(out, call=f"{out.call} under {transform}", path=path)

    def _state_constant(self, model: RecurrentModel, spec: StateSpec) -> Any:
        """Cached per state and per device / dtype (numpy cannot run inside a torch.compile trace)."""
        key = (id(model), spec.name)
        v = self._state_values.get(key)
        if v is None:
            if spec.initializer.random or isinstance(spec.initializer, initializers.Learned):
                return None  # never asked for: drawn per call, or a parameter
            v = self._state_values[key] = super()._state_constant(model, spec)
        return v

    def _draw_dropout(self, shape: tuple[int, ...], rate: float, batch: int | None, key: Any, index: int) -> Any:
        """numpy's mask (the same on every engine) for eager calls; under a transform that would freeze
        it into its graph (torch.compile, export, jit.trace, vmap), a mask drawn in the graph from
        torch's generator (``torch.manual_seed``), one per sequence as ever."""
        if key is not None or not transforms.in_graph_rng(self._now):
            return super()._draw_dropout(shape, rate, batch, key, index)
        anchor = self._anchor
        rank, replicas = self._replica
        if replicas == 1:
            keep = torch.rand((batch,) + tuple(shape), dtype=anchor.dtype, device=anchor.device) >= rate
        else:  # set_replica: the global batch's masks, this replica's rows
            n = self._need_batch(batch, "dropout masks")
            keep = torch.rand((n * replicas,) + tuple(shape), dtype=anchor.dtype, device=anchor.device) >= rate
            keep = keep[rank * n : (rank + 1) * n]
        return keep.to(anchor.dtype) / (1.0 - rate)

    def _fused(self, plan: Plan) -> tuple[StackMatch | None, str]:
        """A plan that is a stack of standard cells runs on torch's fused kernels (:mod:`.fused`)."""
        if not self.fast_path:
            return super()._fused(plan)
        if plan.options.remat:
            return None, "remat was requested (the fused kernels keep their own activations)"
        return patterns.recognize(plan)

    def _fused_kernel_name(self, match: StackMatch) -> str:
        return " -> ".join(f"torch.{m.kernel}" for m in match.layers) + f" ({match.describe()})"

    def _compiled(self, plan: Plan, part: str | tuple[str, int]) -> GeneratedStep:
        """A generated function of the plan, with its literals on the anchor's device and dtype."""
        anchor = self._anchor
        key = (id(plan), part, anchor.device, anchor.dtype)  # plans live in self._plans
        fn = self._steps.get(key)
        if fn is None:
            fn = self._steps[key] = _moved(super()._compiled(plan, part), anchor)
        return fn

    # -- device / dtype moves -------------------------------------------------------
    def _apply(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        out = super()._apply(fn, *args, **kwargs)
        self._rebind()
        if self._carried is not None:  # stateful: the carried states follow the move
            self._carried = [fn(c) for c in self._carried]
        return out

    def _rebind(self) -> None:
        """Follow a move: compute in (and check arguments against) the anchor's dtype."""
        self.dtype = _dtype_name(self._anchor.dtype)
        self._warm()  # the generated code with literals on the new device / dtype

    # -- weights ----------------------------------------------------------------------
    def _read_weights(self) -> dict[str, Any]:
        return {q: p.detach().cpu().numpy() for q, p in self._parameters.items()}

    def _write_weights(self, weights: dict[str, np.ndarray]) -> None:
        with torch.no_grad():
            for q, p in self._parameters.items():
                p.copy_(torch.from_numpy(np.ascontiguousarray(weights[q])))
