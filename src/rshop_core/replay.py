"""Replay a step graph as symbolic tensors, substituting inputs and rewriting nodes.

Graph rewrites (execution plans, nesting) are written as replays: every node is applied
again through :func:`rshop_core.symbolic.apply`, so the result is type-checked and then
traced and verified like any user graph.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .ops import Op
from .symbolic import Tensor, apply
from .types import TensorType

if TYPE_CHECKING:
    from .graph import Node, StepGraph
    from .specs import ParamSpec

Rewrite = Callable[["Node", list[Tensor]], Tensor | None]
Rename = Callable[[str], str]


def param_tensor(spec: ParamSpec, qualified: str | None = None) -> Tensor:
    """A symbolic parameter already carrying its qualified name (``spec`` a ParamSpec)."""
    name = qualified or spec.name
    return Tensor(
        Op.PARAM,
        (),
        {},
        TensorType(spec.shape, spec.dtype, False),
        name,
        param=(
            None,
            name,
            {
                "shape": spec.shape,
                "dtype": spec.dtype,
                "initializer": spec.initializer,
                "trainable": spec.trainable,
                "regularizer": spec.regularizer,
                "constraint": spec.constraint,
            },
        ),
    )


def replay(
    graph: StepGraph, inputs: dict[int, Tensor], rewrite: Rewrite | None = None, rename: Rename | None = None
) -> dict[int, Tensor]:
    """Re-apply every node of ``graph``; returns node id -> Tensor.

    ``inputs`` maps the ids of ``input`` nodes to the Tensors that replace them.
    ``rewrite(node, args) -> Tensor | None`` may replace a node (None keeps it).
    ``rename(qualified) -> qualified`` renames parameters (nesting prefixes them).
    """
    out: dict[int, Tensor] = {}
    for n in graph.nodes:
        if n.op == Op.INPUT:
            out[n.id] = inputs[n.id]
            continue
        args = [out[i] for i in n.inputs]
        new = rewrite(n, args) if rewrite else None
        out[n.id] = new if new is not None else replay_node(graph, n, args, rename)
    return out


def replay_node(graph: StepGraph, n: Node, args: list[Tensor], rename: Rename | None = None) -> Tensor:
    """Node ``n`` of ``graph`` applied again to the symbolic ``args``."""
    if n.op == Op.PARAM:
        spec = graph.params[n.attrs["name"]]
        return param_tensor(spec, rename(spec.name) if rename else None)
    if n.op == Op.CONSTANT:
        return Tensor(Op.CONSTANT, (), dict(n.attrs), n.type, n.name)
    return apply(n.op, args, n.attrs, name=n.name)
