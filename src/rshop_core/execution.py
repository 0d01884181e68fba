"""Execution plans: the model's step graph rewritten for one kind of call.

Engines run plain step graphs (sequences in, states carried, constants fixed). The wiring
features are rewrites of the model's graph, made here once per kind of call and cached:

- **readout**: the previous output is carried as one more state (it already is, in
  ``model.graph``); under **teacher forcing** that state becomes a scanned input fed with the
  ground truth shifted by one step.
- **decode**: x becomes a constant and the loop runs ``output_length`` steps.
- **dropout**: in training, each ``dropout`` node multiplies by a mask given as a constant
  (one mask per sequence: variational); in inference it is removed.
- **masking**: a bool mask is scanned; masked steps keep every state and hold the previous
  output (a hidden state), or output zeros with ``zero_output_for_mask``.

A :class:`Plan` says where each of its inputs comes from; ``rshop_backends.lowered`` fills
them in and drops the hidden states from what a call returns.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from . import functional as F
from .graph import Node, StepGraph
from .ops import Op
from .options import LoopOptions
from .replay import replay
from .symbolic import Input, Tensor
from .tracing import trace

if TYPE_CHECKING:
    from .model import RecurrentModel
    from .parallel.loop_plan import ParallelPlan
    from .passes.motion import Hoisted
    from .patterns import StackMatch

ScanSource = Literal["x", "ground_truth", "mask"]
# ("state", i): the model's state i; ("readout",): the previous output; ("hold", j): output j held
StateSource = tuple[Literal["state"], int] | tuple[Literal["readout"]] | tuple[Literal["hold"], int]
# ("constant", i): the model's constant i; ("x",): the input, when decoding; ("dropout", node id, rate)
ConstantSource = tuple[Literal["constant"], int] | tuple[Literal["x"]] | tuple[Literal["dropout"], int, float]


@dataclass(frozen=True)
class Plan:
    """A rewritten step graph and the source of each of its arguments.

    ``scan``: per scanned input, ``"x"``, ``"ground_truth"`` or ``"mask"``.
    ``states``: per state, ``("state", i)`` (the model's state i), ``("readout",)`` or
    ``("hold", j)`` (output j held through masked steps).
    ``constants``: per constant, ``("constant", i)``, ``("x",)`` (decode) or
    ``("dropout", node_id, rate)``.
    """

    key: tuple  # (model name, training, teacher, masked[, passes][, "probe"]): what the plan is cached under
    options: LoopOptions  # of the model the plan runs (engines read go_backwards etc. here)
    graph: StepGraph
    scan: tuple[ScanSource, ...]
    states: tuple[StateSource, ...]
    constants: tuple[ConstantSource, ...]
    n_outputs: int
    # set by optimisation passes (rshop_core.passes):
    prologue: StepGraph | None = None  # loop-invariant values, computed once per call from parameters
    prologue_names: tuple[str, ...] = ()  # the parameter names the step reads the prologue's outputs as
    hoisted: Hoisted | None = None  # the part run on whole sequences before the loop
    report: tuple[tuple[str, str], ...] = ()  # (pass, what it did) per pass run
    # set by the engine that lowers it:
    fused: StackMatch | None = None  # when a fused kernel runs the whole loop
    note: str = ""  # why the plan is not fused
    parallel: ParallelPlan | None = None  # the loop over time, when it runs in parallel (parallel.loop_plan)
    parallel_note: str = ""  # which loop over time runs, and why
    # a probe plan (rshop_core.probe): the model-graph node id of each output after the first n_outputs
    probed: tuple[int, ...] = ()

    @property
    def graph_where(self) -> str:
        return f"RecurrentModel {self.key[0]!r} execution plan"


def plan_for(model: RecurrentModel, training: bool, teacher: bool, masked: bool) -> Plan:
    """The (cached) plan of ``model`` for a call with these flags."""
    flags = (bool(training), bool(teacher), bool(masked))
    cache = model.__dict__.setdefault("_plans", {})
    if flags not in cache:
        cache[flags] = _build(model, *flags)
    return cache[flags]


def _input_like(node: Node, name: str) -> Tensor:
    return Input(node.type.shape, node.type.dtype, name=name)


@dataclass
class _Arguments:
    """The plan's arguments as they are declared, each with where a call takes it from."""

    xs: list = field(default_factory=list)
    scan: list = field(default_factory=list)
    states: list = field(default_factory=list)
    state_src: list = field(default_factory=list)
    consts: list = field(default_factory=list)
    const_src: list = field(default_factory=list)

    def add_scanned(self, t: Tensor, src: ScanSource) -> None:
        self.xs.append(t)
        self.scan.append(src)

    def add_state(self, t: Tensor, src: StateSource) -> None:
        self.states.append(t)
        self.state_src.append(src)

    def add_constant(self, t: Tensor, src: ConstantSource) -> None:
        self.consts.append(t)
        self.const_src.append(src)


def _declare(model: RecurrentModel, teacher: bool, args: _Arguments) -> tuple[dict[int, Tensor], Tensor]:
    """``(node id -> Tensor for the model graph's inputs, x)``: x scanned (a constant when decoding);
    the states carried, except the readout under teacher forcing (scanned: the ground truth); the
    model's constants."""
    g = model._require_built()
    env: dict = {}
    x = env[g.x[0]] = _input_like(g.nodes[g.x[0]], "x")
    if model.options.decode:
        args.add_constant(x, ("x",))
    else:
        args.add_scanned(x, "x")
    has_readout = model.readout_spec is not None
    for i, sid in enumerate(g.states):
        s = env[sid] = _input_like(g.nodes[sid], g.nodes[sid].name)
        if not (has_readout and i == len(g.states) - 1):
            args.add_state(s, ("state", i))
        elif teacher:
            args.add_scanned(s, "ground_truth")
        else:
            args.add_state(s, ("readout",))
    for i, cid in enumerate(g.constants):
        env[cid] = _input_like(g.nodes[cid], g.nodes[cid].name)
        args.add_constant(env[cid], ("constant", i))
    return env, x


def _dropout_rewrite(training: bool, args: _Arguments) -> Callable[[Node, list[Tensor]], Tensor | None]:
    """The replay hook of dropout: in training a mask constant per node (rate > 0), else the identity."""

    def rewrite(node: Node, inputs: list[Tensor]) -> Tensor | None:
        if node.op != Op.DROPOUT:
            return None
        rate = node.attrs["rate"]
        if not training or rate == 0.0:
            return inputs[0]
        noise = _input_like(node, f"dropout_mask_{node.id}")
        args.add_constant(noise, ("dropout", node.id, rate))
        return F.multiply(inputs[0], noise, name=node.name)

    return rewrite


def _apply_mask(opts: LoopOptions, args: _Arguments, outputs: list, finals: list) -> tuple[list, list]:
    """A scanned bool mask: masked steps keep every state and hold each output (one more state per
    output), or output zeros with ``zero_output_for_mask``."""
    m = Input((), "bool", name="mask")
    args.add_scanned(m, "mask")

    def keep(new: Tensor, old: Tensor) -> Tensor:
        cond = F.reshape(m, [1] * new.type.rank) if new.type.rank else m
        return F.where(cond, new, old, name="mask_keep")

    finals = [keep(f, s) for f, s in zip(finals, args.states)]
    outputs = list(outputs)
    for j, y in enumerate(outputs):
        if opts.zero_output_for_mask:
            outputs[j] = keep(y, F.constant(0.0, y.dtype))
        else:
            held = Input(y.shape, y.dtype, name=f"held_output_{j}")
            args.add_state(held, ("hold", j))
            outputs[j] = keep(y, held)
            finals.append(outputs[j])
    return outputs, finals


def _build(model: RecurrentModel, training: bool, teacher: bool, masked: bool, probe: bool = False) -> Plan:
    """The plan for these flags; ``probe``: every float value the model's step computes is one more
    output (after the model's own), named by its model-graph node id in ``Plan.probed``."""
    g, opts = model._require_built(), model.options
    args = _Arguments()
    env, x = _declare(model, teacher, args)
    out = replay(g, env, _dropout_rewrite(training, args))
    outputs = [out[i] for i in g.outputs]
    finals = [out[i] for i in g.final_states]
    if teacher:
        finals = finals[:-1]  # the readout is scanned, not carried
    if masked:
        outputs, finals = _apply_mask(opts, args, outputs, finals)
    probed: tuple[int, ...] = ()
    if probe:
        from .probe import probe_outputs

        probed, extra = probe_outputs(g, out, x)
        outputs += extra
    graph = trace(args.xs, args.states, args.consts, outputs, finals, f"RecurrentModel {model.name!r} execution plan")
    n_outputs = len(outputs) - len(probed)
    return Plan(
        (model.name, training, teacher, masked),
        opts,
        graph,
        tuple(args.scan),
        tuple(args.state_src),
        tuple(args.const_src),
        n_outputs,
        probed=probed,
    )
