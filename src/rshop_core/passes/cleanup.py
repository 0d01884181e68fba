"""Common-subexpression elimination (dead code goes with every rebuild).

Two nodes with the same op, the same attributes and the same (already merged) inputs
compute the same value: the later one is replaced by the earlier. Parameters merge by
qualified name, literals by value and dtype. ``dropout`` nodes never merge: two of them
on one value draw two different masks.
"""

from __future__ import annotations

import json

from ..graph import Node, StepGraph
from ..ops import Op
from ..replay import replay, replay_node
from ..symbolic import Tensor
from .rebuild import fresh_inputs, live_count, retrace


def _key(node: Node, args: list[Tensor]) -> tuple[object, ...]:
    if node.op == Op.PARAM:
        return (Op.PARAM, node.attrs["name"])
    return (node.op, tuple(a.uid for a in args), json.dumps(node.attrs, sort_keys=True))


def cse(graph: StepGraph, where: str) -> tuple[StepGraph, str | None]:
    """``graph`` with duplicate computations merged; returns (graph, what changed or None)."""
    env, xs, states, consts = fresh_inputs(graph)
    seen: dict[tuple[object, ...], Tensor] = {}
    merged = 0

    def rewrite(n: Node, args: list[Tensor]) -> Tensor | None:
        nonlocal merged
        if n.op == Op.DROPOUT:
            return None
        key = _key(n, args)
        if key in seen:
            merged += n.op not in (Op.PARAM, Op.CONSTANT)
            return seen[key]
        seen[key] = replay_node(graph, n, args)
        return seen[key]

    out = replay(graph, env, rewrite)
    if not merged:
        return graph, None
    new = retrace(graph, out, xs, states, consts, where)
    return new, f"{merged} duplicate node(s) merged ({live_count(graph)} -> {live_count(new)} nodes)"
