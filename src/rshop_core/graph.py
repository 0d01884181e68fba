"""The step graph: topologically ordered SSA nodes (jaxpr / torch.fx style).

A :class:`StepGraph` maps ``(x_t, states_{t-1}, constants)`` to ``(outputs_t, states_t)``.
Node ``i`` may only read nodes ``< i``. Leaf nodes are ``input`` (role ``x``, ``state`` or
``constant``, with an index), ``param`` (a qualified name of :attr:`StepGraph.params`) and
``constant`` (a literal). :func:`verify` re-checks every invariant and is run after every
build and every load.

This module is the IR itself: it imports no frontend. Symbolic tensors become a graph through
:func:`rshop_core.tracing.trace`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NoReturn

from .errors import RshopConfigError, RshopShapeError
from .limits import MAX_CONSTANT_ELEMENTS, MAX_NODES, check_name
from .ops import OPS, Op, infer_type
from .types import TensorType

__all__ = ["Node", "StepGraph", "verify"]

ROLES = ("x", "state", "constant")


@dataclass(frozen=True)
class Node:
    id: int
    op: str
    inputs: tuple
    attrs: dict
    type: TensorType
    name: str

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "op": self.op,
            "inputs": list(self.inputs),
            "attrs": self.attrs,
            "type": self.type.to_json(),
            "name": self.name,
        }


@dataclass(frozen=True)
class StepGraph:
    """``nodes`` in topological order; the ids of the step's arguments and results."""

    nodes: tuple
    x: tuple  # ids of role-x inputs (the per-step slices of the sequence)
    states: tuple  # ids of role-state inputs (states at t-1)
    constants: tuple  # ids of role-constant inputs (seen unchanged every step)
    outputs: tuple  # ids of per-step outputs; outputs[0] is the main output
    final_states: tuple  # ids of the new states, one per state input
    params: dict  # qualified name -> ParamSpec, in creation order
    meta: dict = field(default_factory=dict, compare=False)

    def to_json(self) -> dict:
        return {
            "nodes": [n.to_json() for n in self.nodes],
            "x": list(self.x),
            "states": list(self.states),
            "constants": list(self.constants),
            "outputs": list(self.outputs),
            "final_states": list(self.final_states),
            "params": [p.to_json() for p in self.params.values()],
        }

    def __str__(self) -> str:
        lines = []
        for n in self.nodes:
            args = ", ".join(f"%{i}" for i in n.inputs)
            attrs = ", ".join(f"{k}={v!r}" for k, v in n.attrs.items() if k != "value")
            lines.append(
                f"%{n.id} = {n.op}({args}{', ' if args and attrs else ''}{attrs})  : {n.type.describe()}  # {n.name}"
            )
        lines.append(f"return outputs={[f'%{i}' for i in self.outputs]}, states={[f'%{i}' for i in self.final_states]}")
        return "\n".join(lines)


class _Failure:
    """Raises :mod:`verify`'s errors, each prefixed with where it happened (graph, node)."""

    def __init__(self, where: str):
        self.where = where

    def __call__(self, node: Node | None, msg: str, cls: type[Exception] = RshopConfigError) -> NoReturn:
        at = f"{self.where}, node %{node.id} {node.name!r} (op {node.op})" if node is not None else self.where
        raise cls(f"{at}: {msg}")


LEAF_ATTRS = {Op.INPUT: {"role", "index"}, Op.PARAM: {"name"}, Op.CONSTANT: {"value", "dtype"}}


def verify(g: StepGraph, where: str = "step graph", batched_outputs: bool = True) -> StepGraph:
    """Check every invariant of ``g`` (like ``torch.fx.Graph.lint``); return ``g`` or raise.

    Per node (:func:`_verify_node`): numbered in order, an op of the closed set, a valid name, inputs
    that are earlier nodes, then the rule of its kind (leaf attributes, the role of an input, the
    declared type of a parameter, the size of a literal, the re-inferred type of anything computed).
    Then the signature (:func:`_verify_signature`): arguments listed in their roles, at least one
    (batched) output, one final state per state and of its type.
    """
    fail = _Failure(where)
    if len(g.nodes) > MAX_NODES:
        fail(
            None,
            f"expected at most {MAX_NODES} nodes in one step graph, received {len(g.nodes)}. Split the "
            "step into nested models or loop inside a cell.",
        )
    for k, n in enumerate(g.nodes):
        _verify_node(g, k, n, where, fail)
    _verify_signature(g, batched_outputs, fail)
    return g


def _verify_node(g: StepGraph, k: int, n: Node, where: str, fail: _Failure) -> None:
    if n.id != k:
        fail(n, f"expected id {k} (nodes are numbered in order), received {n.id}.")
    if n.op not in OPS:
        fail(n, f"expected an op of the closed set, received {n.op!r}.")
    check_name(n.name, f"{where}, node %{n.id}", "node name")
    for i in n.inputs:
        if not isinstance(i, int) or not 0 <= i < k:
            fail(
                n,
                f"expected inputs that are earlier nodes (ids < {k}), received {i!r}. "
                "Nodes must be in topological order.",
            )
    if n.op in LEAF_ATTRS and set(n.attrs) != LEAF_ATTRS[n.op]:
        fail(n, f"expected exactly the attributes {sorted(LEAF_ATTRS[n.op])}, received {sorted(map(str, n.attrs))}.")
    if n.op == Op.INPUT:
        _verify_input(g, k, n, fail)
    elif n.op == Op.PARAM:
        _verify_param(g, n, fail)
    elif n.op == Op.CONSTANT:
        if None in n.type.shape or math.prod(n.type.shape) > MAX_CONSTANT_ELEMENTS:
            fail(
                n,
                f"expected a constant of at most {MAX_CONSTANT_ELEMENTS} elements, received "
                f"{n.type.describe()}. Pass large arrays as call-time constants or as parameters.",
            )
    else:
        want, attrs = infer_type(
            n.op, [g.nodes[i].type for i in n.inputs], n.attrs, f"{where}, node %{n.id} {n.name!r} (op {n.op})"
        )
        if want != n.type:
            fail(n, f"expected type {want.describe()}, received {n.type.describe()}.", RshopShapeError)
        if attrs != n.attrs:
            fail(n, f"expected the attributes {attrs}, received {n.attrs}.")


def _role_group(g: StepGraph, role: object) -> tuple | None:
    return {"x": g.x, "state": g.states, "constant": g.constants}.get(role) if isinstance(role, str) else None


def _verify_input(g: StepGraph, k: int, n: Node, fail: _Failure) -> None:
    role, idx = n.attrs.get("role"), n.attrs.get("index")
    group = _role_group(g, role)
    if group is None or not isinstance(idx, int) or idx >= len(group) or group[idx] != k:
        fail(n, f"expected to be listed as {role} #{idx} of the graph.")
    if not n.type.batched and role != "constant":
        fail(n, "expected a batched input.")


def _verify_param(g: StepGraph, n: Node, fail: _Failure) -> None:
    spec = g.params.get(n.attrs.get("name"))
    if spec is None:
        fail(n, f"expected a parameter declared in the graph, received {n.attrs.get('name')!r}.")
    declared = TensorType(spec.shape, spec.dtype, False)
    if n.type != declared:
        fail(
            n,
            f"expected type {declared.describe()} of parameter {spec.name!r}, received {n.type.describe()}.",
            RshopShapeError,
        )


def _verify_signature(g: StepGraph, batched_outputs: bool, fail: _Failure) -> None:
    """The graph's arguments are input nodes of their role; its results are well formed."""
    for role, group in zip(ROLES, (g.x, g.states, g.constants)):
        for idx, i in enumerate(group):
            if not 0 <= i < len(g.nodes) or g.nodes[i].op != Op.INPUT or g.nodes[i].attrs.get("role") != role:
                fail(None, f"expected {role} #{idx} to be an input node, received node %{i}.")
    if not g.outputs:
        fail(None, "expected at least one output, received none.")
    for k, i in enumerate(g.outputs):
        if not 0 <= i < len(g.nodes) or (batched_outputs and not g.nodes[i].type.batched):
            fail(
                None,
                f"expected output #{k} to be a batched value computed from the step's inputs, "
                f"received {g.nodes[i].type.describe() if 0 <= i < len(g.nodes) else i}.",
                RshopShapeError,
            )
    if len(g.final_states) != len(g.states):
        fail(None, f"expected one final state per initial state ({len(g.states)}), received {len(g.final_states)}.")
    for k, (s, f) in enumerate(zip(g.states, g.final_states)):
        st, ft = g.nodes[s].type, g.nodes[f].type
        if st != ft:
            fail(
                None,
                f"state #{k}: expected the final state to have the initial state's type "
                f"{st.describe()}, received {ft.describe()}. A state must keep its shape "
                "and dtype from step to step.",
                RshopShapeError,
            )
