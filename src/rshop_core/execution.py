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

from dataclasses import dataclass

from . import functional as F
from .graph import StepGraph
from .replay import replay
from .symbolic import Input
from .tracing import trace


@dataclass(frozen=True)
class Plan:
    """A rewritten step graph and the source of each of its arguments.

    ``scan``: per scanned input, ``"x"``, ``"ground_truth"`` or ``"mask"``.
    ``states``: per state, ``("state", i)`` (the model's state i), ``("readout",)`` or
    ``("hold", j)`` (output j held through masked steps).
    ``constants``: per constant, ``("constant", i)``, ``("x",)`` (decode) or
    ``("dropout", node_id, rate)``.
    """

    key: tuple  # (model name, training, teacher, masked[, passes])
    options: object  # the LoopOptions of the model the plan runs (engines read go_backwards etc. here)
    graph: StepGraph
    scan: tuple
    states: tuple
    constants: tuple
    n_outputs: int
    # set by optimisation passes (rshop_core.passes):
    prologue: StepGraph | None = None  # loop-invariant values, computed once per call from parameters
    prologue_names: tuple = ()  # the parameter names the step reads the prologue's outputs as
    hoisted: object = None  # passes.Hoisted: the part run on whole sequences before the loop
    report: tuple = ()  # (pass, what it did) per pass run
    # set by the engine that lowers it:
    fused: object = None  # patterns.StackMatch when a fused kernel runs the whole loop
    note: str = ""  # why the plan is not fused
    # a probe plan (rshop_core.probe): the model-graph node id of each output after the first n_outputs
    probed: tuple = ()

    @property
    def graph_where(self) -> str:
        return f"RecurrentModel {self.key[0]!r} execution plan"


def plan_for(model, training: bool, teacher: bool, masked: bool) -> Plan:
    """The (cached) plan of ``model`` for a call with these flags."""
    flags = (bool(training), bool(teacher), bool(masked))
    cache = model.__dict__.setdefault("_plans", {})
    if flags not in cache:
        cache[flags] = _build(model, *flags)
    return cache[flags]


def _input_like(node, name):
    return Input(node.type.shape, node.type.dtype, name=name)


def _build(model, training, teacher, masked, probe=False) -> Plan:
    """The plan for these flags; ``probe``: every float value the model's step computes is one more
    output (after the model's own), named by its model-graph node id in ``Plan.probed``."""
    g, opts = model.graph, model.options
    has_readout = model.readout_spec is not None
    xs, states, consts = [], [], []
    scan_src, state_src, const_src = [], [], []
    env = {}

    x = _input_like(g.nodes[g.x[0]], "x")
    env[g.x[0]] = x
    if opts.decode:
        consts.append(x)
        const_src.append(("x",))
    else:
        xs.append(x)
        scan_src.append("x")
    for i, sid in enumerate(g.states):
        s = _input_like(g.nodes[sid], g.nodes[sid].name)
        env[sid] = s
        if has_readout and i == len(g.states) - 1:
            if teacher:
                xs.append(s)
                scan_src.append("ground_truth")
                continue
            src = ("readout",)
        else:
            src = ("state", i)
        states.append(s)
        state_src.append(src)
    for i, cid in enumerate(g.constants):
        env[cid] = _input_like(g.nodes[cid], g.nodes[cid].name)
        consts.append(env[cid])
        const_src.append(("constant", i))

    def rewrite(node, args):
        if node.op != "dropout":
            return None
        rate = node.attrs["rate"]
        if not training or rate == 0.0:
            return args[0]
        noise = _input_like(node, f"dropout_mask_{node.id}")
        consts.append(noise)
        const_src.append(("dropout", node.id, rate))
        return F.multiply(args[0], noise, name=node.name)

    out = replay(g, env, rewrite)
    outputs = [out[i] for i in g.outputs]
    finals = [out[i] for i in g.final_states]
    if teacher:
        finals = finals[:-1]  # the readout is scanned, not carried
    if masked:
        m = Input((), "bool", name="mask")
        xs.append(m)
        scan_src.append("mask")

        def keep(new, old):
            cond = F.reshape(m, [1] * new.type.rank) if new.type.rank else m
            return F.where(cond, new, old, name="mask_keep")

        finals = [keep(f, s) for f, s in zip(finals, states)]
        for j, y in enumerate(outputs):
            if opts.zero_output_for_mask:
                outputs[j] = keep(y, F.constant(0.0, y.dtype))
            else:
                held = Input(y.shape, y.dtype, name=f"held_output_{j}")
                states.append(held)
                state_src.append(("hold", j))
                outputs[j] = keep(y, held)
                finals.append(outputs[j])
    probed = ()
    if probe:
        from .probe import probe_outputs

        probed, extra = probe_outputs(g, out, x)
        outputs += extra
    graph = trace(xs, states, consts, outputs, finals, f"RecurrentModel {model.name!r} execution plan")
    n_outputs = len(outputs) - len(probed)
    return Plan((model.name, training, teacher, masked), opts, graph, tuple(scan_src), tuple(state_src),
                tuple(const_src), n_outputs, probed=probed)
