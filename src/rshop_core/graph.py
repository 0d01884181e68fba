"""The step graph: topologically ordered SSA nodes (jaxpr / torch.fx style).

A :class:`StepGraph` maps ``(x_t, states_{t-1}, constants)`` to ``(outputs_t, states_t)``.
Node ``i`` may only read nodes ``< i``. Leaf nodes are ``input`` (role ``x``, ``state`` or
``constant``, with an index), ``param`` (a qualified name of :attr:`StepGraph.params`) and
``constant`` (a literal). :func:`verify` re-checks every invariant and is run after every
build and every load.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .errors import RshopConfigError, RshopShapeError
from .limits import MAX_CONSTANT_ELEMENTS, MAX_NODES, check_name
from .ops import OPS, infer_type
from .specs import ParamSpec
from .symbolic import Tensor
from .types import TensorType

__all__ = ["Node", "StepGraph", "trace", "verify"]

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
        return {"id": self.id, "op": self.op, "inputs": list(self.inputs), "attrs": self.attrs,
                "type": self.type.to_json(), "name": self.name}


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
        return {"nodes": [n.to_json() for n in self.nodes], "x": list(self.x),
                "states": list(self.states), "constants": list(self.constants),
                "outputs": list(self.outputs), "final_states": list(self.final_states),
                "params": [p.to_json() for p in self.params.values()]}

    def __str__(self) -> str:
        lines = []
        for n in self.nodes:
            args = ", ".join(f"%{i}" for i in n.inputs)
            attrs = ", ".join(f"{k}={v!r}" for k, v in n.attrs.items() if k != "value")
            lines.append(f"%{n.id} = {n.op}({args}{', ' if args and attrs else ''}{attrs})"
                         f"  : {n.type.describe()}  # {n.name}")
        lines.append(f"return outputs={[f'%{i}' for i in self.outputs]}, "
                     f"states={[f'%{i}' for i in self.final_states]}")
        return "\n".join(lines)


def _unique(base: str, taken: set) -> str:
    name, k = base, 1
    while name in taken:
        name, k = f"{base}_{k}", k + 1
    taken.add(name)
    return name


def trace(x, states, constants, outputs, final_states, where: str, batched_outputs: bool = True) -> StepGraph:
    """Build a :class:`StepGraph` from symbolic tensors.

    Every tensor reachable from ``outputs`` and ``final_states`` becomes a node; every
    ``Input`` reached must be among the declared ``x``, ``states`` or ``constants``.
    Parameters get qualified names ``<layer name>/<weight name>``, made unique per graph.
    ``batched_outputs=False`` is for the loop-invariant prologue of an optimized plan
    (:mod:`rshop_core.passes`), whose outputs are computed once per call from parameters.
    """
    declared = {}
    for role, group in (("x", x), ("state", states), ("constant", constants)):
        for i, t in enumerate(group):
            if not isinstance(t, Tensor) or t.op != "input":
                raise RshopConfigError(
                    f"{where}: expected {role} #{i} to be an rshop Input, received {t!r}.")
            if t.uid in declared:
                raise RshopConfigError(
                    f"{where}: Input {t.name!r} is declared twice (as {declared[t.uid][0]} and {role}).")
            declared[t.uid] = (role, i)
    for kind, group in (("output", outputs), ("final state", final_states)):
        for i, t in enumerate(group):
            if not isinstance(t, Tensor):
                raise RshopConfigError(f"{where}: expected {kind} #{i} to be an rshop Tensor, received {t!r}.")

    order: list = [t for group in (x, states, constants) for t in group]
    seen = {t.uid for t in order}
    for root in list(outputs) + list(final_states):  # iterative post-order DFS
        stack = [(root, False)]
        while stack:
            t, done = stack.pop()
            if done:
                if t.uid not in seen:
                    seen.add(t.uid)
                    order.append(t)
                continue
            if t.uid in seen:
                continue
            if t.op == "input":
                raise RshopConfigError(
                    f"{where}: the step reads Input {t.name!r} {t.type.describe()}, which is not "
                    "declared. Pass it as input, in initial_states, or in constants.")
            stack.append((t, True))
            stack.extend((i, False) for i in reversed(t.inputs) if i.uid not in seen)

    ids = {t.uid: k for k, t in enumerate(order)}
    params: dict = {}
    owner_names: dict = {}
    owners: dict = {}  # qualified name -> (owning layer or None, its local name): not serialized
    taken: set = set()
    nodes = []
    for k, t in enumerate(order):
        attrs = dict(t.attrs)
        if t.op == "input":
            role, idx = declared[t.uid]
            attrs = {"role": role, "index": idx}
        elif t.op == "param":
            owner, local, spec = t.param
            if owner is None:  # already qualified (a replayed or nested graph)
                qual = local
                taken.add(local.split("/")[0])
            else:
                key = id(owner)
                if key not in owner_names:
                    owner_names[key] = _unique(owner.name, taken)
                qual = f"{owner_names[key]}/{local}"
            owners.setdefault(qual, (owner, local))
            if qual not in params:
                params[qual] = ParamSpec(qual, spec["shape"], spec["dtype"], spec["initializer"],
                                         spec["trainable"], spec.get("regularizer"))
            attrs = {"name": qual}
        name = attrs["name"] if t.op == "param" else t.name
        nodes.append(Node(k, t.op, tuple(ids[i.uid] for i in t.inputs), attrs, t.type, name))
    g = StepGraph(tuple(nodes), tuple(ids[t.uid] for t in x), tuple(ids[t.uid] for t in states),
                  tuple(ids[t.uid] for t in constants), tuple(ids[t.uid] for t in outputs),
                  tuple(ids[t.uid] for t in final_states), params, {"param_owners": owners})
    verify(g, where, batched_outputs)
    return g


def verify(g: StepGraph, where: str = "step graph", batched_outputs: bool = True) -> StepGraph:  # noqa: C901 - a flat list of invariants
    """Check every invariant of ``g`` (like ``torch.fx.Graph.lint``); return ``g`` or raise."""
    def fail(node, msg, cls=RshopConfigError):
        at = f"{where}, node %{node.id} {node.name!r} (op {node.op})" if node is not None else where
        raise cls(f"{at}: {msg}")

    if len(g.nodes) > MAX_NODES:
        fail(None, f"expected at most {MAX_NODES} nodes in one step graph, received {len(g.nodes)}. Split the "
                   "step into nested models or loop inside a cell.")
    for k, n in enumerate(g.nodes):
        if n.id != k:
            fail(n, f"expected id {k} (nodes are numbered in order), received {n.id}.")
        if n.op not in OPS:
            fail(n, f"expected an op of the closed set, received {n.op!r}.")
        check_name(n.name, f"{where}, node %{n.id}", "node name")
        for i in n.inputs:
            if not isinstance(i, int) or not 0 <= i < k:
                fail(n, f"expected inputs that are earlier nodes (ids < {k}), received {i!r}. "
                        "Nodes must be in topological order.")
        if n.op in ("input", "param", "constant"):
            keys = {"input": {"role", "index"}, "param": {"name"}, "constant": {"value", "dtype"}}[n.op]
            if set(n.attrs) != keys:
                fail(n, f"expected exactly the attributes {sorted(keys)}, received {sorted(map(str, n.attrs))}.")
        if n.op == "input":
            role, idx = n.attrs.get("role"), n.attrs.get("index")
            group = {"x": g.x, "state": g.states, "constant": g.constants}.get(role) if isinstance(role, str) else None
            if group is None or not isinstance(idx, int) or idx >= len(group) or group[idx] != k:
                fail(n, f"expected to be listed as {role} #{idx} of the graph.")
            if not n.type.batched and role != "constant":
                fail(n, "expected a batched input.")
        elif n.op == "param":
            spec = g.params.get(n.attrs.get("name"))
            if spec is None:
                fail(n, f"expected a parameter declared in the graph, received {n.attrs.get('name')!r}.")
            if n.type != TensorType(spec.shape, spec.dtype, False):
                fail(n, f"expected type {TensorType(spec.shape, spec.dtype, False).describe()} "
                        f"of parameter {spec.name!r}, received {n.type.describe()}.", RshopShapeError)
        elif n.op == "constant":
            if None in n.type.shape or math.prod(n.type.shape) > MAX_CONSTANT_ELEMENTS:
                fail(n, f"expected a constant of at most {MAX_CONSTANT_ELEMENTS} elements, received "
                        f"{n.type.describe()}. Pass large arrays as call-time constants or as parameters.")
        else:
            want, attrs = infer_type(n.op, [g.nodes[i].type for i in n.inputs], n.attrs,
                                     f"{where}, node %{n.id} {n.name!r} (op {n.op})")
            if want != n.type:
                fail(n, f"expected type {want.describe()}, received {n.type.describe()}.", RshopShapeError)
            if attrs != n.attrs:
                fail(n, f"expected the attributes {attrs}, received {n.attrs}.")
    for role, group in (("x", g.x), ("state", g.states), ("constant", g.constants)):
        for idx, i in enumerate(group):
            if not 0 <= i < len(g.nodes) or g.nodes[i].op != "input" or g.nodes[i].attrs.get("role") != role:
                fail(None, f"expected {role} #{idx} to be an input node, received node %{i}.")
    if not g.outputs:
        fail(None, "expected at least one output, received none.")
    for k, i in enumerate(g.outputs):
        if not 0 <= i < len(g.nodes) or (batched_outputs and not g.nodes[i].type.batched):
            fail(None, f"expected output #{k} to be a batched value computed from the step's inputs, "
                       f"received {g.nodes[i].type.describe() if 0 <= i < len(g.nodes) else i}.",
                 RshopShapeError)
    if len(g.final_states) != len(g.states):
        fail(None, f"expected one final state per initial state ({len(g.states)}), "
                   f"received {len(g.final_states)}.")
    for k, (s, f) in enumerate(zip(g.states, g.final_states)):
        st, ft = g.nodes[s].type, g.nodes[f].type
        if st != ft:
            fail(None, f"state #{k}: expected the final state to have the initial state's type "
                       f"{st.describe()}, received {ft.describe()}. A state must keep its shape "
                       "and dtype from step to step.", RshopShapeError)
    return g
