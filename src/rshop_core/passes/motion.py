"""Passes that move work out of the per-step loop (they change the plan, not only its graph).

``licm`` (loop-invariant code motion): values computed from parameters and literals alone
(slices or concatenations of weights made by other passes, a user's ``exp(log_scale)``)
are computed once per call by the plan's *prologue*; the step reads them as parameters
named ``~licm/<k>``. Their gradients reach the real parameters through the prologue.

``hoist_inputs``: the part of the step that depends only on the scanned inputs and
parameters, and contains a matmul (``x_t @ kernel``, and what follows from it alone) or an
embedding lookup (a parameter table gathered by token ids read from x), is
computed for all T steps at once before the loop, by running it on the sequence with time
folded into the batch (every op is per-example, so this is exact). The loop then scans the
results instead. It pays where each op inside a loop has a fixed cost (eager torch); XLA
compiles both forms well and runs the hoisted one slower (docs/performance.md, "The default
pipeline of each engine"), so jax and tensorflow leave it out of their pipelines.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from ..graph import StepGraph
from ..ops import LEAVES, Op
from ..replay import param_tensor, replay, replay_node
from ..specs import ParamSpec
from ..symbolic import Tensor
from .rebuild import fresh_inputs, input_like, live_count, retrace

if TYPE_CHECKING:
    from ..execution import Plan


@dataclass(frozen=True)
class Hoisted:
    """The time-parallel part of a plan, run on whole sequences before the loop.

    ``graph``: a step graph whose x inputs are the plan's scanned sequences listed in
    ``inputs`` (indices into ``plan.scan``) and whose outputs are sequences the loop scans.
    The optimized step scans ``[xs[i] for i in keep]`` and then those outputs, in order.
    """

    graph: StepGraph
    inputs: tuple[int, ...]
    keep: tuple[int, ...]


def _readers(graph: StepGraph) -> dict[int, set[int]]:
    out: dict[int, set[int]] = {}
    for n in graph.nodes:
        for i in n.inputs:
            out.setdefault(i, set()).add(n.id)
    return out


def _frontier(graph: StepGraph, inside: set[int]) -> list[int]:
    """Nodes of ``inside`` read by a node outside it or returned by the step."""
    readers = _readers(graph)
    returned = set(graph.outputs) | set(graph.final_states)
    return [i for i in sorted(inside) if i in returned or readers.get(i, set()) - inside]


def licm(plan: Plan, where: str) -> tuple[Plan, str | None]:
    g = plan.graph
    invariant: set[int] = set()
    for n in g.nodes:
        if n.op in (Op.PARAM, Op.CONSTANT) or (n.op not in LEAVES and all(i in invariant for i in n.inputs)):
            invariant.add(n.id)
    moved = [i for i in _frontier(g, invariant) if g.nodes[i].op not in (Op.PARAM, Op.CONSTANT)]
    if not moved:
        return plan, None
    names = tuple(f"~licm/{k}" for k in range(len(moved)))
    derived = {i: ParamSpec(name, g.nodes[i].type.shape, g.nodes[i].type.dtype) for i, name in zip(moved, names)}
    # the prologue: parameters in, the moved values out
    out = _replay_from(g, invariant, {})
    outs = [out[i] for i in moved]
    prologue = retrace(g, out, [], [], [], f"{where} (prologue)", outputs=outs, finals=[], batched_outputs=False)
    env, xs, states, consts = fresh_inputs(g)
    body = replay(g, env, lambda n, a: param_tensor(derived[n.id]) if n.id in derived else None)
    new = retrace(g, body, xs, states, consts, where)
    return (
        replace(plan, graph=new, prologue=prologue, prologue_names=names),
        f"{len(moved)} loop-invariant value(s) computed once per call "
        f"({live_count(g)} -> {live_count(new)} nodes per step)",
    )


def hoist_inputs(plan: Plan, where: str) -> tuple[Plan, str | None]:
    if plan.options.remat:
        # a (batch, T, ...) projection of the whole sequence and its gradient would outlive every
        # checkpointed segment: exactly the memory remat is asked to save
        return plan, "skipped: remat keeps no whole-sequence intermediates"
    g = plan.graph
    xs_ids = set(g.x)
    parallel: set[int] = set()  # computed from scanned inputs, parameters and literals only
    for n in g.nodes:
        if n.op in LEAVES:
            continue
        srcs = [g.nodes[i] for i in n.inputs]
        if all(i in parallel or i in xs_ids or s.op in (Op.PARAM, Op.CONSTANT) for i, s in zip(n.inputs, srcs)) and any(
            i in parallel or i in xs_ids for i in n.inputs
        ):
            parallel.add(n.id)
    # matmuls and einsums, and embedding lookups: a table (parameters) gathered by ids read from x
    heavy = {
        i
        for i in parallel
        if g.nodes[i].op in (Op.MATMUL, Op.EINSUM)
        or (g.nodes[i].op == Op.GATHER and g.nodes[i].inputs[0] not in parallel | xs_ids)
    }
    if not heavy:
        return plan, None
    # what a heavy node needs, and what follows from heavy nodes without leaving `parallel`
    # until nothing changes: a follower may read another x-only value (a mask's `where` with a literal
    # under zero_output_for_mask reads the reshaped mask), which the hoisted part must then compute too
    keep_set: set[int] = set()
    grown = set(heavy)
    while grown - keep_set:
        keep_set |= grown
        for n in reversed(g.nodes):
            if n.id in keep_set:
                keep_set.update(i for i in n.inputs if i in parallel)
        grown = keep_set | {n.id for n in g.nodes if n.id in parallel and any(i in keep_set for i in n.inputs)}
    frontier = _frontier(g, keep_set)
    # the time-parallel graph: the scanned inputs it reads -> the frontier values
    used = [k for k, i in enumerate(g.x) if any(i in g.nodes[j].inputs for j in keep_set)]
    pre_in = {g.x[k]: input_like(g.nodes[g.x[k]]) for k in used}
    pre_out = _replay_from(g, keep_set, pre_in)
    pre = retrace(
        g,
        pre_out,
        [pre_in[g.x[k]] for k in used],
        [],
        [],
        f"{where} (time-parallel part)",
        outputs=[pre_out[i] for i in frontier],
        finals=[],
    )
    # the step: frontier values arrive as scanned inputs
    env, xs, states, consts = fresh_inputs(g)
    scanned = {i: input_like(g.nodes[i], f"hoisted_{i}") for i in frontier}
    body = replay(g, env, lambda n, a: scanned.get(n.id))
    outside = set(range(len(g.nodes))) - keep_set
    keep = tuple(
        k
        for k, i in enumerate(g.x)
        if any(i in g.nodes[j].inputs for j in outside) or i in g.outputs or i in g.final_states
    )
    new = retrace(g, body, [xs[k] for k in keep] + [scanned[i] for i in frontier], states, consts, where)
    hoisted = Hoisted(pre, tuple(used), keep)
    ops = sorted(g.nodes[i].op for i in heavy)
    return (
        replace(plan, graph=new, hoisted=hoisted),
        f"{len(keep_set)} op(s) ({', '.join(ops)}) run on all T steps at once before the loop "
        f"({live_count(g)} -> {live_count(new)} nodes per step)",
    )


def _replay_from(g: StepGraph, nodes: set[int], inputs: dict[int, Tensor]) -> dict[int, Tensor]:
    """Replay only ``nodes`` of ``g``, reading ``inputs`` (node id -> Tensor) for the inputs among
    their arguments; parameters and literals they read are replayed on demand."""
    out = dict(inputs)
    for n in g.nodes:
        if n.id in nodes:
            out[n.id] = replay_node(g, n, [_leaf(g, out, i) for i in n.inputs])
    return out


def _leaf(g: StepGraph, out: dict[int, Tensor], i: int) -> Tensor:
    if i not in out:  # a parameter or literal read by the hoisted part
        out[i] = replay_node(g, g.nodes[i], [])
    return out[i]
