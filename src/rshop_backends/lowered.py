"""What every engine's layer object shares: the call path, checks, results, weights, and the
engine contract (:class:`Lowered`, an abstract base class).

An engine is an :class:`~rshop_backends.engine.EngineSpec` (name, layer class, ops module,
passes) and a layer class deriving from :class:`Lowered` that implements its abstract hooks over
its own arrays (the type checker and ``abc`` refuse a layer class missing one) and may override
the optional ones (``_to_host``, ``_lengths_guard``, ``_poison``, ``_check_unknown_dims``,
``_fused``, ``_differentiated``, ``_state_constant``, ``_draw_dropout``). Everything else —
checks, execution plans, initial states, dropout masks, stateful carry, what a call returns — is
here, once; how a model kind combines its leaves' runs is the kind's own ``run``
(:mod:`rshop_core.lowerable`).
"""

from __future__ import annotations

import contextlib
import numbers
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

import numpy as np

from rshop_core import constraints as _constraints
from rshop_core import initializers
from rshop_core import passes as _passes
from rshop_core.call_forms import refuse_symbolic
from rshop_core.checks import ArrayInfo, check_array, check_call, check_lengths_values
from rshop_core.errors import RshopConfigError, RshopEngineError, RshopNotImplementedError, RshopShapeError
from rshop_core.execution import plan_for
from rshop_core.model import learned_state_param
from rshop_core.parallel.loop_plan import attach as attach_parallel
from rshop_core.weights import check_weights

from . import codegen, numerics
from . import parallel as _parallel

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from rshop_core.execution import Plan
    from rshop_core.graph import StepGraph
    from rshop_core.lowerable import Lowerable
    from rshop_core.model import RecurrentModel, StateSpec
    from rshop_core.patterns import StackMatch

    from .engine import EngineSpec

PARTS: dict[str, Callable[[Plan], StepGraph | None]] = {
    "step": lambda p: p.graph,
    "prologue": lambda p: p.prologue,
    "hoisted": lambda p: None if p.hoisted is None else p.hoisted.graph,
}


def _part(plan: Plan, part: str | tuple[str, int]) -> StepGraph:
    """The graph of a plan's ``part``: a name of ``PARTS``, or ``(what, level)`` for a level's
    ``"coefficients"``, their ``"zero"``-state form, or their ``"prefix"`` and ``"remainder"``
    (:mod:`rshop_core.parallel.hoist`)."""
    if isinstance(part, tuple):
        assert plan.parallel is not None, "only a plan with a parallel loop has coefficients"
        level = plan.parallel.levels[part[1]]
        what = part[0]
        if what == "coefficients":
            return level.coefficients
        got = level.zero if what == "zero" else getattr(level.split, what, None)
        assert got is not None, f"level {part[1]} has no {what} graph"
        return got
    graph = PARTS[part](plan)
    assert graph is not None, f"compiled only for a plan with a {part}"
    return graph


def compiled_step(
    model: Lowerable, engine: EngineSpec, dtype: str, plan: Plan, part: str | tuple[str, int] = "step"
) -> codegen.GeneratedStep:
    """The generated function of a plan's ``part`` (its step, its loop-invariant prologue, its
    part hoisted out of the loop, or a level's coefficients for the time-parallel loop) for an
    engine (an :class:`~rshop_backends.engine.EngineSpec`), cached per
    (engine, dtype, plan, part) on the model."""
    key = (engine.name, dtype, plan.key, part)
    cache = model._lowered_cache
    if key not in cache:
        ops: Any = engine.ops  # EMITTERS, NAMESPACE, constant and optional FUSIONS
        cache[key] = codegen.generate(
            _part(plan, part),
            ops.EMITTERS,
            ops.NAMESPACE,
            ops.constant,
            dtype,
            engine.name,
            getattr(ops, "FUSIONS", None),
        )
    fn: codegen.GeneratedStep = cache[key]
    return fn


@dataclass(frozen=True)
class Explanation:
    """What a lowered layer runs for one kind of call: :meth:`Lowered.explain`."""

    model: str
    engine: str
    dtype: str
    call: str  # "inference", "training", ... (the plan's flags)
    path: str  # "fused ..." or "generic loop"
    why: str  # why not fused ("" when fused)
    passes: tuple[tuple[str, str], ...]  # (pass, what it did)
    ops_per_step: int | None  # engine operations in the generated step; None when fused
    step_source: str | None
    time: str = ""  # which loop over time runs, and why (docs/time-parallel.md)

    def __str__(self) -> str:
        lines = [
            f"RecurrentModel {self.model!r} on {self.engine} ({self.dtype}), {self.call} call",
            f"  path: {self.path}",
        ]
        if self.why:
            lines.append(f"  not fused: {self.why}")
        if self.time:
            lines.append(f"  over time: {self.time}")
        if self.ops_per_step is not None:
            lines.append(f"  ops per step: {self.ops_per_step}")
        lines.append("  passes:" + ("" if self.passes else " none"))
        lines += [f"    {name}: {said}" for name, said in self.passes]
        return "\n".join(lines)

    __repr__ = __str__


class Lowered(ABC):
    """The engine contract, and what every engine's layer object shares.

    ``layer(x, initial_state=None, constants=None, *, mask=None, sequence_lengths=None,
    ground_truth=None, initial_readout=None, training=False, output_length=None, check_numerics=False)``

    ``x``: (batch, T, *input_shape), or (batch, *input_shape) with ``decode``. Returns the
    output ((batch, T, ...) with ``return_sequences``, else the last step's), followed by the
    final states as a tuple ``(y, *states)`` when ``return_states``; a model with several
    outputs returns them all first. ``training`` turns dropout on and, with ``ground_truth``,
    teacher forcing. ``check_numerics=True`` raises :class:`~rshop_core.errors.RshopNumericsError`
    naming the first time step and node where a NaN or an Inf appears (:mod:`.numerics`).

    Construction (every engine's ``__init__`` calls ``Lowered.__init__`` after its framework's
    own, before reading weights): ``model`` (any :class:`~rshop_core.lowerable.Lowerable`),
    ``dtype``, ``engine`` (the :class:`~rshop_backends.engine.EngineSpec`), ``passes``,
    ``fast_path`` and two optional hooks for hosts such as the Keras layer:
    ``dropout_masks(shape, rate, batch, key, index) -> mask`` draws the dropout masks (default:
    :meth:`_draw_dropout`), and ``codegen_context()`` is a context manager entered around code
    generation (the Keras layer runs it eagerly).
    """

    engine: str = "?"
    _native: tuple[type, ...] = ()  # the array types this engine accepts
    _native_names: str = ""  # how error messages name them (default: module.qualname)

    def __init__(
        self,
        model: Lowerable,
        dtype: str,
        engine: EngineSpec,
        passes: Sequence[str] | None = None,
        fast_path: bool | str = True,
        *,
        dropout_masks: Callable[..., Any] | None = None,
        codegen_context: Callable[[], AbstractContextManager[Any]] | None = None,
    ) -> None:
        self.model, self.dtype, self.options = model, dtype, model.options
        self._engine_module = engine  # the EngineSpec
        where = f"lower({engine.name!r}) of {type(model).__name__} {model.name!r}"
        self.passes = _passes.check_pipeline(engine.passes if passes is None else passes, f"{where}, argument passes")
        # the pipeline for calls being differentiated, where the engine can tell (jax)
        self.grad_passes = self.passes if passes is not None or engine.grad_passes is None else engine.grad_passes
        # the engine's default pipelines run under the cost rule; passes asked for by name all run
        self.cost_rule = passes is None
        if fast_path not in (True, False, "require"):
            raise RshopConfigError(
                f"{where}, argument fast_path: expected True, False or 'require', received {fast_path!r}."
            )
        self.fast_path = fast_path
        self._dropout_masks = dropout_masks  # None: self._draw_dropout
        self._codegen_context = codegen_context  # None: nothing around code generation
        self._leaf_of: dict[int, RecurrentModel] = {}  # id of a plan in _plans -> the leaf it runs
        # (id of the leaf, training, teacher, masked, grad) -> the plan this layer runs
        self._plans: dict[tuple[Any, ...], Plan] = {}  # engines may key more kinds of call (torch: transforms)
        self._dropout_rng = np.random.default_rng([model.seed, 0xD0])
        self._replica: tuple[int, int] = (0, 1)  # data parallel: (this replica, replicas); see set_replica
        self._carried: list[Any] | None = None  # stateful: the final states of the last call
        # stateful: the batch size the carried states have (batch_size, else fixed by the first call)
        self._stateful_batch: int | None = model.options.batch_size
        self.newton_report: dict[str, Any]  # the last Newton loop's iterations (set when one runs)
        self._parts: tuple[RecurrentModel, ...] = tuple(model.leaves)  # the recurrent models a call runs (model.run)
        for part in self._parts:  # fast_path='require' fails now, not at the first call
            self._plan(part, False, False, False)
        self.step_fn = self._step(self._plan(self._parts[0], False, False, False))

    # -- the hooks every engine implements, over its own arrays ----------------------------------
    @abstractmethod
    def _describe(self, a: Any) -> ArrayInfo:
        """``(shape, dtype name)`` of an engine array (None for dims or a rank unknown while tracing)."""

    @abstractmethod
    def _from_numpy(self, a: np.ndarray) -> Any:
        """An engine array (in this layer's dtype, on its device) holding ``a``."""

    @abstractmethod
    def _broadcast(self, v: Any, batch: int | None, like: Any) -> Any:
        """A per-example value ``v`` repeated over a batch of ``batch`` (that of ``like`` when unknown)."""

    @abstractmethod
    def _shift(self, seq: Any, first: Any, backwards: bool) -> Any:
        """``seq`` (batch, T, ...) moved one step later in processing order, ``first`` at the start."""

    @abstractmethod
    def _lengths_to_mask(self, lengths: Any, steps: int | None, like: Any) -> Any:
        """A (batch, T) bool mask of ``t < lengths``."""

    @abstractmethod
    def _detach(self, v: Any) -> Any:
        """``v`` cut from the autodiff graph (the carried states of a stateful layer)."""

    @abstractmethod
    def _sum_abs(self, v: Any) -> Any:
        """The engine scalar ``sum(|v|)``."""

    @abstractmethod
    def _sum_square(self, v: Any) -> Any:
        """The engine scalar ``sum(v ** 2)``."""

    @abstractmethod
    def _param_dict(self) -> dict[str, Any]:
        """The current parameters by qualified name, as the generated step reads them."""

    @abstractmethod
    def _flip_time(self, y: Any) -> Any:
        """``y`` (batch, T, ...) reversed along T."""

    @abstractmethod
    def _concat_last(self, a: Any, b: Any) -> Any:
        """``a`` and ``b`` joined along their last axis."""

    @abstractmethod
    def _loop(
        self, plan: Plan, P: dict[str, Any], xs: list[Any], states: list[Any], consts: list[Any], steps: int | None
    ) -> tuple[Sequence[Any], Sequence[Any]]:
        """Run ``plan`` (its step, fused kernel or loop kind, with ``plan.options``) over time:
        ``(outputs, final states)`` of the plan's graph."""

    @abstractmethod
    def _read_weights(self) -> dict[str, Any]:
        """The current parameters by qualified name (engine arrays or numpy)."""

    @abstractmethod
    def _write_weights(self, weights: dict[str, np.ndarray]) -> None:
        """Assign every parameter from checked numpy arrays in this layer's dtype."""

    # hooks of apply_constraints: not abstract, so an engine written before them still loads
    def _norm(self, v: Any, axes: tuple[int, ...]) -> Any:
        """``sqrt(sum(v ** 2, axes, keepdims=True))`` as an engine array."""
        raise RshopNotImplementedError(
            f"{self._where}: expected an engine implementing _norm for weight constraints, received one without it."
        )

    def _clip(self, v: Any, lo: float, hi: float) -> Any:
        """``v`` clipped to [lo, hi] (hi may be inf) as an engine array."""
        raise RshopNotImplementedError(
            f"{self._where}: expected an engine implementing _clip for weight constraints, received one without it."
        )

    def _assign_params(self, values: dict[str, Any]) -> None:
        """Replace the named parameters in place with the engine arrays ``values`` (no gradient recorded)."""
        raise RshopNotImplementedError(
            f"{self._where}: expected an engine implementing _assign_params for weight constraints, "
            "received one without it."
        )

    def _step(self, plan: Plan) -> codegen.GeneratedStep:
        return self._compiled(plan, "step")

    def _compiled(self, plan: Plan, part: str | tuple[str, int]) -> codegen.GeneratedStep:
        # generated code is cached on the leaf the plan runs: leaves of a composition may share a name
        with (self._codegen_context or contextlib.nullcontext)():
            return compiled_step(self._leaf_of.get(id(plan), self.model), self._engine_module, self.dtype, plan, part)

    # -- plans: fast path or optimized generic loop ---------------------------------
    def _plan(self, model: RecurrentModel, training: bool, teacher: bool, masked: bool, grad: bool = False) -> Plan:
        """The plan this layer runs for a call of ``model`` with these flags (cached). ``grad``: the
        call is being differentiated (as far as the engine can tell: :meth:`_differentiated`)."""
        key = (id(model), bool(training), bool(teacher), bool(masked), bool(grad))  # leaves may share a name
        if key not in self._plans:
            raw = plan_for(model, *key[1:4])
            fused, why = self._fused(raw)
            if fused is not None and raw.options.time_parallel in ("scan", "newton"):
                fused, why = None, f"time_parallel={raw.options.time_parallel!r} asks for a parallel loop over time"
            if fused is not None:
                plan = replace(raw, fused=fused, note="")
            else:
                if self.fast_path == "require":
                    raise RshopNotImplementedError(
                        f"{self.engine} layer of {type(self.model).__name__} {self.model.name!r}: expected a step "
                        f"that runs on a fused kernel (fast_path='require'), received one that does not: {why}."
                    )
                passes = self.grad_passes if grad else self.passes
                per_op = self._engine_module.per_op_loop
                plan = replace(_passes.optimize(raw, passes, self.cost_rule, per_op), note=why)
                plan = self._time_loop(plan)
            self._plans[key] = plan
            self._leaf_of[id(plan)] = model
        return self._plans[key]

    def _time_loop(self, plan: Plan) -> Plan:
        """``plan`` with its loop over time chosen (:func:`rshop_core.parallel.loop_plan.attach`)."""
        if self._engine_module.parallel is None:
            if plan.options.time_parallel in ("scan", "newton"):
                raise RshopNotImplementedError(
                    f"{self._where}: expected an engine with a parallel loop over time for "
                    f"time_parallel={plan.options.time_parallel!r}, received the {self.engine} engine, which has "
                    "none. Use time_parallel='auto' or False."
                )
            return replace(plan, parallel_note=f"sequential: the {self.engine} engine has no parallel loop")
        return attach_parallel(plan)

    def _parallel_or(
        self,
        plan: Plan,
        P: dict[str, Any],
        xs: list[Any],
        states: list[Any],
        consts: list[Any],
        steps: int | None,
        sequential: Callable[[], tuple[Sequence[Any], Sequence[Any]]],
    ) -> tuple[Sequence[Any], Sequence[Any]]:
        """The plan run in parallel over time when it has a parallel loop this call wants, else
        ``sequential()`` (the engine's own loop over ``P`` and ``xs``)."""
        if not _parallel.wanted(self, plan, steps, self._batch_of(states)):
            return sequential()
        return _parallel.run(self, plan, P, xs, states, consts, steps, sequential)

    def _batch_of(self, states: Sequence[Any]) -> int | None:
        """The batch size of a call's carried states, None when unknown (traced) or there are none."""
        shape = self._describe(states[0])[0] if states else None
        return None if not shape else shape[0]

    def _newton_report(self, iterations: Any, change: Any, converged: Any) -> None:
        """Where a Newton loop's iterations are reported (``newton_report``; a warning when it fell back)."""
        self.newton_report = {"iterations": int(iterations), "change": float(change), "converged": bool(converged)}
        _parallel.warn_fallback(self._where, int(iterations), float(change), bool(converged))

    def _fused(self, plan: Plan) -> tuple[StackMatch | None, str]:
        """``(what the engine's fused kernel runs, "")`` or ``(None, why not)``; engines with
        fused kernels override it."""
        if not self.fast_path:
            return None, "the fast path is turned off (fast_path=False)"
        return None, f"the {self.engine} engine has no fused recurrent kernels"

    def _fused_kernel_name(self, match: StackMatch) -> str:
        return match.describe()

    def _differentiated(self, P: dict[str, Any]) -> bool:
        """Whether this call is being differentiated; engines that can tell at trace time override it."""
        return False

    def explain(
        self, training: bool = False, masked: bool = False, teacher: bool = False, grad: bool = False
    ) -> Explanation:
        """Which path (fused kernel or generic loop) and which passes a call with these flags runs
        (``grad``: a call being differentiated, where the engine tells them apart)."""
        model = self._parts[0]
        plan = self._plan(model, training, teacher and training, masked, grad)
        call = (
            ", ".join(
                k
                for k, v in (
                    ("training", training),
                    ("teacher forcing", teacher and training),
                    ("masked", masked),
                    ("differentiated", grad),
                )
                if v
            )
            or "inference"
        )
        if plan.fused is not None:
            return Explanation(
                self.model.name,
                self.engine,
                self.dtype,
                call,
                f"fused kernel: {self._fused_kernel_name(plan.fused)}",
                "",
                (),
                None,
                None,
            )
        src = self._step(plan).__rshop_source__
        ops = codegen.operations(src)
        return Explanation(
            self.model.name,
            self.engine,
            self.dtype,
            call,
            "generic loop (generated step)",
            plan.note,
            plan.report,
            ops,
            src,
            self._time_said(plan),
        )

    def _time_said(self, plan: Plan) -> str:
        """explain()'s line on the loop over time."""
        pp = plan.parallel
        if pp is None or pp.forced:
            return plan.parallel_note
        assert self._engine_module.parallel is not None, "attach() plans a parallel loop on such engines only"
        least = self._engine_module.parallel.AUTO_MIN_STEPS
        if least is None:
            return f"sequential: the {self.engine} engine runs no parallel loop under 'auto' ({pp.why})"
        most = self._engine_module.parallel.AUTO_MAX_STEP_ELEMENTS
        bound = "" if most is None else f" while batch x {pp.width} state elements <= {most}"
        return f"{pp.why}; under 'auto' the {self.engine} engine runs it from T >= {least}{bound}, else step by step"

    def _prelude(self, plan: Plan, P: dict[str, Any], xs: list[Any]) -> tuple[dict[str, Any], list[Any]]:
        """Before the loop: the plan's loop-invariant values (added to ``P``) and its time-parallel
        part (its outputs join the scanned sequences)."""
        if plan.prologue is not None:
            vals, _ = self._compiled(plan, "prologue")(P, (), ())
            P = {**P, **dict(zip(plan.prologue_names, vals))}
        if plan.hoisted is not None:
            h = plan.hoisted
            folded = [self._fold_time(xs[i]) for i in h.inputs]
            ys, _ = self._compiled(plan, "hoisted")(P, *folded, (), ())
            like = xs[h.inputs[0]]
            xs = [xs[i] for i in h.keep] + [self._unfold_time(y, like) for y in ys]
        return P, xs

    def _fold_time(self, a: Any) -> Any:
        """(batch, T, ...) -> (batch * T, ...)."""
        return a.reshape((-1,) + tuple(a.shape[2:]))

    def _unfold_time(self, y: Any, like: Any) -> Any:
        """(batch * T, ...) -> (batch, T, ...), batch and T those of ``like``."""
        return y.reshape(tuple(like.shape[:2]) + tuple(y.shape[1:]))

    @property
    def _where(self) -> str:
        return f"{self.engine} layer of {type(self.model).__name__} {self.model.name!r}"

    # -- checks -----------------------------------------------------------------
    def _info(self, arr: Any, what: str) -> ArrayInfo:
        refuse_symbolic(self._where, what, arr)  # RecurrentShop's rnn(Input(...)): say what to use instead
        if isinstance(arr, np.ma.MaskedArray):  # an ndarray subclass whose mask no engine would honour
            raise RshopEngineError(
                f"{self._where}, {what}: expected a plain array, received a numpy.ma.MaskedArray (its mask would "
                "be dropped silently). Pass arr.filled(value) and, for masked time steps, mask= or "
                "sequence_lengths=."
            )
        if not isinstance(arr, self._native):
            want = self._native_names or " or ".join(f"{t.__module__}.{t.__qualname__}" for t in self._native)
            raise RshopEngineError(
                f"{self._where}, {what}: expected {want}, received {type(arr).__module__}."
                f"{type(arr).__qualname__}. Convert it to the {self.engine} engine's arrays first."
            )
        return self._describe(arr)

    def _listed(self, v: Any, what: str) -> tuple[list[Any] | None, list[Any] | None]:
        if v is None:
            return None, None
        v = list(v) if isinstance(v, (list, tuple)) else [v]
        return [self._info(a, f"{what} #{i}") for i, a in enumerate(v)], v

    def _one(self, v: Any, what: str) -> ArrayInfo | None:
        return None if v is None else self._info(v, what)

    def _to_host(self, a: Any) -> np.ndarray | None:
        """A numpy copy of the engine array ``a``, or None when its values are unknown (traced)."""
        return np.asarray(a)

    def _lengths_guard(self, model: RecurrentModel, lengths: Any, steps: int | None, like: Any) -> tuple[Any, Any]:
        """Check traced ``sequence_lengths`` against [0, T] when the call runs; returns ``(lengths,
        poison)``: ``poison`` (a per-example bool array) marks rows whose outputs and states become
        NaN, for engines that cannot raise from inside a trace (jax), else None."""
        raise RshopNotImplementedError(
            f"{self._where}, argument sequence_lengths: expected lengths whose values are known at call time, "
            f"received traced ones, which the {self.engine} engine cannot check against [0, T]. Pass concrete "
            "lengths, or a bool mask."
        )

    def _poison(self, v: Any, bad: Any) -> Any:
        """``v`` with the rows (batch entries) flagged in ``bad`` replaced by NaN."""
        raise NotImplementedError

    # -- calling ------------------------------------------------------------------
    def __call__(self, x: Any, initial_state: Any = None, constants: Any = None, **kwargs: Any) -> Any:
        """Run the layer: see the class docstring (``y``, or ``(y, *states)`` with ``return_states``)."""
        return self._call(self._param_dict(), x, initial_state, constants, **kwargs)

    def _call(self, P: dict[str, Any], x: Any, initial_state: Any = None, constants: Any = None, **kwargs: Any) -> Any:
        st_info, states_given = self._listed(initial_state, "initial state")
        k_info, consts_given = self._listed(constants, "constant")
        states = None if st_info is None or states_given is None else list(zip(st_info, states_given))
        ys, finals = self.model.run(self, P, x, states, {**kwargs, "constants": (k_info, consts_given)})
        return self._result(ys, finals)

    # -- what a model kind's run() may ask (rshop_core.lowerable.Runner) ----------------------
    def run_leaf(
        self, model: RecurrentModel, P: dict[str, Any], x: Any, states: list | None, kwargs: dict[str, Any]
    ) -> tuple[list[Any], list[Any]]:
        """Run one recurrent model (a leaf of ``self.model``): ``(outputs, final states)``."""
        st_info, states_given = (None, None) if states is None else ([s[0] for s in states], [s[1] for s in states])
        k_info, consts_given = kwargs["constants"]
        rest = {k: v for k, v in kwargs.items() if k != "constants"}
        return self._run_model(model, P, x, st_info, states_given, k_info, consts_given, **rest)

    def flip_time(self, y: Any) -> Any:
        """``y`` (batch, T, ...) reversed along T."""
        return self._flip_time(y)

    def concat_last(self, a: Any, b: Any) -> Any:
        """``a`` and ``b`` joined along their last axis."""
        return self._concat_last(a, b)

    def check_state_count(self, model: Lowerable, states: list | None) -> None:
        """Raise unless ``states`` is None or holds one entry per state of ``model``."""
        if states is not None and len(states) != len(model.state_specs):
            raise RshopConfigError(
                f"{self._where}, argument initial_state: expected {len(model.state_specs)} states "
                f"{[s.name for s in model.state_specs]}, received {len(states)}."
            )

    def _run_model(
        self,
        model: RecurrentModel,
        P: dict[str, Any],
        x: Any,
        st_info: list | None,
        states_given: list[Any] | None,
        k_info: list | None,
        consts_given: list[Any] | None,
        *,
        mask: Any = None,
        sequence_lengths: Any = None,
        ground_truth: Any = None,
        initial_readout: Any = None,
        training: bool = False,
        output_length: int | None = None,
        dropout_key: Any = None,
        check_numerics: bool | str = False,
    ) -> tuple[list[Any], list[Any]]:
        """Run one model's plan; returns (user outputs, user final states)."""
        batch, steps = check_call(
            model,
            self.dtype,
            self._info(x, "argument x"),
            st_info,
            k_info,
            self._one(mask, "argument mask"),
            self._one(sequence_lengths, "argument sequence_lengths"),
            self._one(ground_truth, "argument ground_truth"),
            self._one(initial_readout, "argument initial_readout"),
            bool(training),
            output_length,
            self._stateful_batch,
        )
        x = self._check_unknown_dims(model, x, batch, steps)
        poison = None  # engines that cannot raise on traced lengths (jax) poison those rows with NaN instead
        if sequence_lengths is not None:
            values = self._to_host(sequence_lengths)
            if values is not None and steps is not None:
                check_lengths_values(model, values, steps)
            else:
                sequence_lengths, poison = self._lengths_guard(model, sequence_lengths, steps, x)
        teacher = bool(training) and ground_truth is not None
        plan = self._plan(
            model, bool(training), teacher, mask is not None or sequence_lengths is not None, self._differentiated(P)
        )
        opts = model.options
        readout = None
        if model.readout_spec is not None:
            readout = (
                initial_readout if initial_readout is not None else self._zeros(model.readout_spec.shape, batch, x)
            )
        xs = []
        for src in plan.scan:
            if src == "x":
                xs.append(x)
            elif src == "ground_truth":
                xs.append(self._shift(ground_truth, readout, opts.go_backwards))
            else:
                xs.append(mask if mask is not None else self._lengths_to_mask(sequence_lengths, steps, x))
        user = list(states_given) if states_given is not None else self._default_states(model, P, batch, x)
        g = model.graph
        assert g is not None, "a lowered model is built"
        states = []
        for st in plan.states:
            if st[0] == "state":
                states.append(user[st[1]])
            elif st[0] == "readout":
                states.append(readout)
            else:  # ("hold", j): the output held through masked steps starts at zeros
                states.append(self._zeros(g.nodes[g.outputs[st[1]]].type.shape, batch, x))
        consts = []
        for k in plan.constants:
            if k[0] == "constant":
                assert consts_given is not None, "check_call raised unless the constants were given"
                consts.append(consts_given[k[1]])
            elif k[0] == "x":
                consts.append(x)
            else:  # ("dropout", node, rate): one mask per sequence
                draw = self._dropout_masks or self._draw_dropout
                consts.append(draw(g.nodes[k[1]].type.shape, k[2], batch, dropout_key, k[1]))
        ys, finals = self._loop(plan, P, xs, states, consts, steps)
        if check_numerics is not False:  # the first NaN/Inf's step and node (before a stateful carry moves)
            numerics.check(
                self,
                model,
                plan,
                P,
                (xs, states, consts, steps),
                (ys, finals),
                states_given is not None,
                check_numerics,
            )
        user_finals = [f for f, src in zip(finals, plan.states) if src[0] == "state"]
        if poison is not None:
            ys, user_finals = [self._poison(v, poison) for v in ys], [self._poison(v, poison) for v in user_finals]
        if opts.stateful:
            self._carried = [self._detach(f) for f in user_finals]
            if self._stateful_batch is None and batch is not None:  # Keras 3: the first call fixes it
                self._stateful_batch = batch
        return list(ys)[: plan.n_outputs], user_finals

    def _check_unknown_dims(self, model: RecurrentModel, x: Any, batch: int | None, steps: int | None) -> Any:
        """x, with run-time checks of the dimensions ``check_call`` could not see (unknown while
        tracing: a ``None`` batch or T); engines with symbolic shapes (tensorflow) override it."""
        return x

    def _result(self, ys: Sequence[Any], states: Sequence[Any]) -> Any:
        out = list(ys)
        if self.model.returned_state_specs:
            out += list(states)
        return out[0] if len(out) == 1 else tuple(out)

    # -- initial states -------------------------------------------------------------
    def _need_batch(self, batch: int | None, what: str) -> int:
        """``batch``, or an error when it is unknown (None: traced with a symbolic batch)."""
        if batch is None:
            raise RshopShapeError(f"{self._where}: expected a known batch size for {what}, received an unknown one.")
        return batch

    def _zeros(self, shape: tuple[int, ...], batch: int | None, like: Any) -> Any:
        return self._broadcast(self._from_numpy(np.zeros(shape, self.dtype)), batch, like)

    def _default_states(self, model: RecurrentModel, P: dict[str, Any], batch: int | None, like: Any) -> list[Any]:
        if self._carried is not None:
            return list(self._carried)
        out = []
        for s in model.state_specs:
            init = s.initializer
            if isinstance(init, initializers.Learned):
                out.append(self._broadcast(P[learned_state_param(s.name)], batch, like))
            elif init.random:  # drawn per call, for this batch, from the model seed: identical everywhere
                known = self._need_batch(batch, f"the random initial state {s.name!r}")
                rng = initializers.rng_for(model.seed, learned_state_param(s.name))
                rank, replicas = self._replica  # data parallel: this replica's rows of the global batch's
                drawn = init((known * replicas,) + s.shape, self.dtype, rng)
                out.append(self._from_numpy(drawn[rank * known : (rank + 1) * known]))
            else:
                out.append(self._broadcast(self._state_constant(model, s), batch, like))
        return out

    def _state_constant(self, model: RecurrentModel, spec: StateSpec) -> Any:
        """The per-example initial value of a state with a constant initializer (an engine array)."""
        return self._from_numpy(spec.initializer(spec.shape, self.dtype))

    def _draw_dropout(self, shape: tuple[int, ...], rate: float, batch: int | None, key: Any, index: int) -> Any:
        """A dropout mask (batch, *shape) scaled by 1/(1-rate), drawn by numpy from the layer's
        generator: the same masks on every engine. ``key`` is the jax engine's (``dropout_key``)."""
        if key is not None:
            raise RshopConfigError(
                f"{self._where}, argument dropout_key: expected None (a jax PRNG key is for the "
                "jax engine), received one. Use layer.reseed(seed) to choose the masks."
            )
        known = self._need_batch(batch, "dropout masks")
        rank, replicas = self._replica
        keep = self._dropout_rng.random((known * replicas,) + tuple(shape)) >= rate
        keep = keep[rank * known : (rank + 1) * known]  # this replica's rows of the global batch's masks
        return self._from_numpy((keep / (1.0 - rate)).astype(self.dtype))

    def reseed(self, seed: int) -> None:
        """Restart the dropout mask generator (masks are drawn by numpy: same seed, same masks everywhere)."""
        self._dropout_rng = np.random.default_rng([int(seed), 0xD0])

    # -- data parallel --------------------------------------------------------------
    def set_replica(self, rank: int, replicas: int) -> None:
        """Run as replica ``rank`` of ``replicas`` data-parallel replicas (torch DDP: the process's rank
        and the world size), each calling the layer on an equal shard of a global batch, shards in rank
        order: a call's row i is row ``rank * batch + i`` of the global batch. What is drawn per example —
        dropout masks and random initial states — is drawn for the whole global batch (from the same seed on
        every replica) and this replica's rows are kept, so a data-parallel run computes what one device
        computes on the whole batch. Weights, stateful carry and every other input are this replica's own.
        ``set_replica(0, 1)`` (the default) is one device."""
        whole = lambda v: isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))  # np.int64 too
        if not (whole(rank) and whole(replicas) and replicas >= 1 and 0 <= rank < replicas):
            raise RshopConfigError(
                f"{self._where}, set_replica: expected an int rank in [0, replicas) and an int replicas >= 1, "
                f"received rank={rank!r}, replicas={replicas!r}. Pass the process's rank and the world size "
                "(torch.distributed.get_rank(), get_world_size())."
            )
        self._replica = (int(rank), int(replicas))

    @property
    def replica(self) -> tuple[int, int]:
        """``(rank, replicas)`` set by :meth:`set_replica`; ``(0, 1)``: one device."""
        return self._replica

    # -- stateful -------------------------------------------------------------------
    def reset_states(self, values: Any = None) -> None:
        """Forget the carried states (``values=None``) or set them (a list, one per state). The batch
        size stays fixed (``batch_size``, or the first call's); values given before any call fix it."""
        if not self.options.stateful:
            raise RshopConfigError(
                f"{self._where}, reset_states: expected a model with stateful=True, received stateful=False."
            )
        if values is None:
            self._carried = None
            return
        info, listed = self._listed(values, "reset_states value")
        assert info is not None and listed is not None, "_listed lists every value given"
        check_call_states(self, info)
        self._carried = list(listed)
        if self._stateful_batch is None and info and info[0][0]:
            self._stateful_batch = info[0][0][0]

    @property
    def stateful_batch_size(self) -> int | None:
        """The batch size a stateful layer carries states for: its ``batch_size``, else the batch of its
        first call (None before it, and for a layer that is not stateful)."""
        return self._stateful_batch if self.options.stateful else None

    @property
    def states(self) -> list[Any] | None:
        """The carried states of a stateful layer (None before the first call or after a reset)."""
        return None if self._carried is None else list(self._carried)

    # -- weights ------------------------------------------------------------------
    def get_weights(self) -> dict[str, np.ndarray]:
        """The current parameters as numpy arrays keyed by qualified name."""
        return {k: np.array(v) for k, v in self._read_weights().items()}

    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        """Replace every parameter; names, shapes and dtypes must match (in ``self.dtype``)."""
        self._write_weights(check_weights(self._where, self.model.param_specs, weights, self.dtype))

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the model with this layer's CURRENT (e.g. trained) weights to a ``.rshop`` file.

        Weights are stored in the model's dtype (a float64 lowering of a float32 model is cast back).
        """
        from rshop_core.serialization import save

        weights = {k: v.astype(self.model.param_specs[k].dtype) for k, v in self.get_weights().items()}
        return save(self.model, path, weights)

    def initial_weights(self) -> dict[str, np.ndarray]:
        """The model's weights in this layer's dtype."""
        return {k: v.astype(self.dtype) for k, v in self.model._weights.items()}

    def regularization_loss(self, params: dict[str, Any] | None = None) -> Any:
        """``sum(l1 * |w| + l2 * w**2)`` over the regularized parameters, as an engine scalar."""
        P = self._param_dict() if params is None else params
        total = self._from_numpy(np.zeros((), self.dtype))
        for k, spec in self.model.param_specs.items():
            r = spec.regularizer
            if r and r["l1"]:
                total = total + r["l1"] * self._sum_abs(P[k])
            if r and r["l2"]:
                total = total + r["l2"] * self._sum_square(P[k])
        return total

    @property
    def constraints(self) -> dict[str, dict[str, Any]]:
        """Qualified name -> the JSON form of its constraint, for every constrained parameter."""
        return {k: s.constraint for k, s in self.model.param_specs.items() if s.constraint is not None}

    @overload
    def apply_constraints(self, params: None = None) -> None: ...
    @overload
    def apply_constraints(self, params: dict[str, Any]) -> dict[str, Any]: ...
    def apply_constraints(self, params: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """Project the constrained parameters (``kernel_constraint=``, ``add_weight(constraint=)``, ...)
        onto their constraint sets, as Keras does after each optimizer step. Call it after ``opt.step()``.

        ``apply_constraints()`` changes this layer's own parameters in place (torch: under
        ``no_grad``; tensorflow: ``assign``; jax: ``layer.params`` is rebound to a new dict) and returns
        None. ``apply_constraints(params)`` is pure: it returns a new dict, ``params`` with its
        constrained entries projected (jax: works under ``jax.jit``, after ``optax.apply_updates``).
        A layer without constraints changes nothing.
        """
        specs = self.constraints
        if params is None:
            current = self._param_dict()
            self._assign_params({k: _constraints.project(c, self._detach(current[k]), self) for k, c in specs.items()})
            return None
        if not isinstance(params, dict):
            raise RshopConfigError(
                f"{self._where}, apply_constraints: expected None or a dict of parameters by qualified name, "
                f"received {type(params).__name__}."
            )
        missing = sorted(set(specs) - set(params))
        if missing:
            raise RshopConfigError(
                f"{self._where}, apply_constraints: expected the constrained parameters {sorted(specs)}, "
                f"received a dict missing {missing}. Pass the whole parameter dict (layer.params on jax)."
            )
        return {k: _constraints.project(specs[k], v, self) if k in specs else v for k, v in params.items()}


def check_call_states(layer: Lowered, info: list) -> None:
    """Check states given to ``reset_states`` like initial states of a batch of ``batch_size``."""
    specs = layer.model.state_specs
    if len(info) != len(specs):
        raise RshopConfigError(
            f"{layer._where}, reset_states: expected {len(specs)} states "
            f"{[s.name for s in specs]}, received {len(info)}."
        )
    for i, (spec, inf) in enumerate(zip(specs, info)):
        check_array(
            f"{layer._where}, reset_states value #{i} {spec.name!r}",
            inf,
            spec.shape,
            layer.dtype,
            layer._stateful_batch,
        )
