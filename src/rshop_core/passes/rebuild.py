"""Rebuild a step graph through a rewrite: the one mechanism every pass uses.

A pass replays the graph (:func:`rshop_core.replay.replay`) with a ``rewrite(node, args)``
hook and traces the result again, so what it produces is type-checked and verified like
any user graph, and nodes nothing reads any more are dropped on the way (dead-code
elimination comes free with every rebuild).
"""

from __future__ import annotations

from collections.abc import Sequence

from ..graph import Node, StepGraph
from ..ops import LEAVES, Op
from ..symbolic import Tensor
from ..tracing import trace


def input_like(node: Node, name: str | None = None) -> Tensor:
    """A fresh ``input`` tensor of exactly ``node``'s type."""
    return Tensor(Op.INPUT, (), {}, node.type, name or node.name)


def fresh_inputs(graph: StepGraph) -> tuple[dict[int, Tensor], list[Tensor], list[Tensor], list[Tensor]]:
    """``(env, xs, states, constants)``: new inputs for every argument of ``graph``, by role."""
    env: dict[int, Tensor] = {}
    groups = []
    for ids in (graph.x, graph.states, graph.constants):
        group = [input_like(graph.nodes[i]) for i in ids]
        env.update(zip(ids, group))
        groups.append(group)
    xs, states, constants = groups
    return env, xs, states, constants


def retrace(
    graph: StepGraph,
    out: dict[int, Tensor],
    xs: Sequence[Tensor],
    states: Sequence[Tensor],
    constants: Sequence[Tensor],
    where: str,
    outputs: Sequence[Tensor] | None = None,
    finals: Sequence[Tensor] | None = None,
    batched_outputs: bool = True,
) -> StepGraph:
    """Trace the replayed values ``out`` (node id -> Tensor) with the given arguments."""
    outputs = [out[i] for i in graph.outputs] if outputs is None else outputs
    finals = [out[i] for i in graph.final_states] if finals is None else finals
    return trace(xs, states, constants, outputs, finals, where, batched_outputs=batched_outputs)


def live_count(graph: StepGraph) -> int:
    """Nodes that compute something (leaves excluded): what a pass's report counts."""
    return sum(n.op not in LEAVES for n in graph.nodes)
