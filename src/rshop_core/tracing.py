"""``trace``: symbolic tensors (the frontend) -> a verified :class:`~rshop_core.graph.StepGraph` (the IR).

This is the one bridge from the functional frontend (:mod:`rshop_core.symbolic`) to the IR
(:mod:`rshop_core.graph`); the IR modules never import the frontend. Tracing runs in four steps:

1. :func:`_declare_arguments`: each declared ``Input`` gets its role (``x``, ``state``,
   ``constant``) and index; results must be rshop Tensors.
2. :func:`_topological_order`: every tensor reachable from the results, arguments first, each
   after the tensors it reads (an iterative post-order walk, so deep graphs do not recurse).
3. :class:`_ParamNamer` and :func:`_nodes`: one :class:`~rshop_core.graph.Node` per tensor,
   parameters qualified as ``<layer name>/<weight name>`` (layer names made unique per graph).
4. :func:`~rshop_core.graph.verify` re-checks the result.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .errors import RshopConfigError
from .graph import Node, StepGraph, verify
from .ops import Op
from .specs import ParamSpec
from .symbolic import Tensor

__all__ = ["trace"]

ROLE_GROUPS = ("x", "state", "constant")


def trace(
    x: Sequence[Tensor],
    states: Sequence[Tensor],
    constants: Sequence[Tensor],
    outputs: Sequence[Tensor],
    final_states: Sequence[Tensor],
    where: str,
    batched_outputs: bool = True,
) -> StepGraph:
    """Build a :class:`StepGraph` from symbolic tensors.

    Every tensor reachable from ``outputs`` and ``final_states`` becomes a node; every
    ``Input`` reached must be among the declared ``x``, ``states`` or ``constants``.
    Parameters get qualified names ``<layer name>/<weight name>``, made unique per graph.
    ``batched_outputs=False`` is for the loop-invariant prologue of an optimized plan
    (:mod:`rshop_core.passes`), whose outputs are computed once per call from parameters.
    """
    declared = _declare_arguments(x, states, constants, where)
    _check_results(outputs, final_states, where)
    order = _topological_order([*x, *states, *constants], [*outputs, *final_states], where)
    nodes, params, owners = _nodes(order, declared)
    ids = {t.uid: k for k, t in enumerate(order)}

    def id_list(group: Sequence[Tensor]) -> tuple[int, ...]:
        return tuple(ids[t.uid] for t in group)

    g = StepGraph(
        tuple(nodes),
        id_list(x),
        id_list(states),
        id_list(constants),
        id_list(outputs),
        id_list(final_states),
        params,
        {"param_owners": owners},
    )
    verify(g, where, batched_outputs)
    return g


def _declare_arguments(
    x: Sequence[object], states: Sequence[object], constants: Sequence[object], where: str
) -> dict[int, tuple[str, int]]:
    """``uid -> (role, index)`` of every declared argument; each must be an ``Input``, declared once."""
    declared: dict[int, tuple[str, int]] = {}
    for role, group in zip(ROLE_GROUPS, (x, states, constants)):
        for i, t in enumerate(group):
            if not isinstance(t, Tensor) or t.op != Op.INPUT:
                raise RshopConfigError(f"{where}: expected {role} #{i} to be an rshop Input, received {t!r}.")
            if t.uid in declared:
                raise RshopConfigError(
                    f"{where}: Input {t.name!r} is declared twice (as {declared[t.uid][0]} and {role})."
                )
            declared[t.uid] = (role, i)
    return declared


def _check_results(outputs: Sequence[object], final_states: Sequence[object], where: str) -> None:
    for kind, group in (("output", outputs), ("final state", final_states)):
        for i, t in enumerate(group):
            if not isinstance(t, Tensor):
                raise RshopConfigError(f"{where}: expected {kind} #{i} to be an rshop Tensor, received {t!r}.")


def _topological_order(arguments: list[Tensor], roots: list[Tensor], where: str) -> list[Tensor]:
    """The arguments, then every tensor reachable from ``roots`` after the tensors it reads."""
    order = list(arguments)
    seen = {t.uid for t in order}
    for root in roots:  # iterative post-order DFS
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
            if t.op == Op.INPUT:
                raise RshopConfigError(
                    f"{where}: the step reads Input {t.name!r} {t.type.describe()}, which is not "
                    "declared. Pass it as input, in initial_states, or in constants."
                )
            stack.append((t, True))
            stack.extend((i, False) for i in reversed(t.inputs) if i.uid not in seen)
    return order


class _ParamNamer:
    """Qualified parameter names of one graph: ``<owning layer's name, made unique>/<local name>``."""

    def __init__(self) -> None:
        self.params: dict[str, ParamSpec] = {}  # qualified name -> ParamSpec, in the order reached
        # qualified name -> (owning layer or None, its local name): not serialized
        self.owners: dict[str, tuple[Any, str]] = {}
        self._layer_names: dict[int, str] = {}  # id(layer) -> its unique name in this graph
        self._taken: set[str] = set()

    def qualify(self, t: Tensor) -> str:
        assert t.param is not None, "a param tensor carries its origin"
        owner, local, spec = t.param
        if owner is None:  # already qualified (a replayed or nested graph)
            qual = local
            self._taken.add(local.split("/")[0])
        else:
            key = id(owner)
            if key not in self._layer_names:
                self._layer_names[key] = _unique(owner.name, self._taken)
            qual = f"{self._layer_names[key]}/{local}"
        self.owners.setdefault(qual, (owner, local))
        if qual not in self.params:
            self.params[qual] = ParamSpec(
                qual,
                spec["shape"],
                spec["dtype"],
                spec["initializer"],
                spec["trainable"],
                spec.get("regularizer"),
                spec.get("constraint"),
            )
        return qual


def _unique(base: str, taken: set[str]) -> str:
    name, k = base, 1
    while name in taken:
        name, k = f"{base}_{k}", k + 1
    taken.add(name)
    return name


def _nodes(
    order: list[Tensor], declared: dict[int, tuple[str, int]]
) -> tuple[list[Node], dict[str, ParamSpec], dict[str, tuple[Any, str]]]:
    """``(nodes, params, param owners)``: one node per tensor of ``order``, numbered in that order."""
    ids = {t.uid: k for k, t in enumerate(order)}
    namer = _ParamNamer()
    nodes = []
    for k, t in enumerate(order):
        attrs: dict[str, Any] = dict(t.attrs)
        name = t.name
        if t.op == Op.INPUT:
            role, idx = declared[t.uid]
            attrs = {"role": role, "index": idx}
        elif t.op == Op.PARAM:
            name = namer.qualify(t)
            attrs = {"name": name}
        nodes.append(Node(k, t.op, tuple(ids[i.uid] for i in t.inputs), attrs, t.type, name))
    return nodes, namer.params, namer.owners
