"""What a step graph allows over time: are its final states affine in the carried states, and what is
the structure of the Jacobian d(final states)/d(states)?

``analyze(graph)`` answers both without numbers:

- **affinity** by one rule per op (:func:`_affine_node`): a node is affine in the states (jointly) when
  its op keeps affinity (add, subtract, matmul, reshape, ..., a product with at most one
  state-dependent factor, a quotient by a state-free denominator, a where on a state-free condition)
  and its state-dependent inputs are affine. A state's *breaker* is the first non-affine node among
  the ancestors of its final state; nodes that feed only outputs never matter.
- **structure** by element-level dependency propagation (:mod:`.deps`): final-state element ``i`` is
  coupled to state element ``j`` when it may read it. The coupled groups are the connected components
  of that (undirected) relation over the flat state vector; their largest size is the block size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..graph import Node, StepGraph
from ..ops import Op
from .deps import MAX_DEPS, Coarse, Deps, node_deps, state_offsets

__all__ = ["StateReport", "Analysis", "analyze", "MAX_BLOCK"]

MAX_BLOCK = MAX_DEPS  # the largest coupled group that still counts as "block"; past it the Jacobian is dense

# ops whose value is affine in the states when every state-dependent input is
_LINEAR = (
    Op.ADD,
    Op.SUBTRACT,
    Op.NEGATIVE,
    Op.CONCAT,
    Op.SPLIT,
    Op.SLICE,
    Op.RESHAPE,
    Op.TRANSPOSE,
    Op.SUM,
    Op.MEAN,
    Op.MATMUL,
    Op.DROPOUT,
)


@dataclass(frozen=True)
class StateReport:
    """One state of the graph: is its new value affine in the states, and which states it reads."""

    name: str  # the state input node's name
    size: int  # flat per-example size
    affine: bool  # its final state is affine in the carried states (jointly)
    breaker: int | None  # id of the first node (topological order) on a path to its final state that is not affine
    depends_on: tuple[str, ...]  # names of the states its final state reads


@dataclass(frozen=True)
class Analysis:
    """The affinity and Jacobian structure of a step graph's final states in its states."""

    states: tuple[StateReport, ...]
    affine: bool  # every final state is affine in the states (jointly)
    structure: str  # "diagonal" | "block" | "dense" | "none" (no final state reads a state)
    block: int  # size of the largest coupled group (1 for diagonal, N for dense, 0 without states)
    groups: tuple[tuple[int, ...], ...]  # partition of range(N) into coupled groups, each sorted, by first element

    def breaker_node(self) -> int | None:
        """The first breaker over all states (the smallest node id), or None when the step is affine."""
        found = [s.breaker for s in self.states if s.breaker is not None]
        return min(found) if found else None

    def jacobian(self) -> str:
        """``"diagonal"``, ``"block(k)"``, ``"dense"`` or ``"none"``."""
        return f"block({self.block})" if self.structure == "block" else self.structure

    def describe(self, graph: StepGraph) -> str:
        """One line for ``explain()``: what makes the step non-affine (node id, name, op), and the
        Jacobian's structure."""
        jac = "Jacobian " + self.jacobian()
        if self.structure == "none":
            return "no final state reads a state: every step is independent of the previous ones"
        first = self.breaker_node()
        if first is None:
            names = ", ".join(repr(s.name) for s in self.states)
            verb = "is" if len(self.states) == 1 else "are"
            return f"state{'s' if len(self.states) > 1 else ''} {names} {verb} affine in the states, {jac}"
        n = graph.nodes[first]
        broken = [s.name for s in self.states if s.breaker == first]
        names = ", ".join(repr(b) for b in broken)
        return f"node %{n.id} {n.name!r} ({n.op}) makes state{'s' if len(broken) > 1 else ''} {names} non-affine; {jac}"


def _affine_node(n: Node, dependent: list[bool], affine: list[bool]) -> bool:
    """Whether node ``n`` (state-dependent) is affine in the states, given its inputs'."""
    if n.op == Op.INPUT:
        return True
    live = [i for i in n.inputs if dependent[i]]
    if not all(affine[i] for i in live):
        return False
    if n.op in _LINEAR:
        return True
    if n.op in (Op.MULTIPLY, Op.EINSUM):
        return len(live) <= 1
    if n.op == Op.DIVIDE:
        return not dependent[n.inputs[1]]
    if n.op == Op.WHERE:
        return not dependent[n.inputs[0]]
    if n.op in (Op.EXPAND_DIMS, Op.SQUEEZE, Op.CUMSUM):
        return True
    if n.op == Op.CAST:  # float -> float only: truncating to int or testing != 0 is not affine
        return n.type.dtype in ("float32", "float64")
    if n.op == Op.GATHER:  # linear in the value read, at state-free indices
        return not dependent[n.inputs[1]]
    return False


def _ancestors(graph: StepGraph, root: int) -> set[int]:
    seen, stack = {root}, [root]
    while stack:
        for i in graph.nodes[stack.pop()].inputs:
            if i not in seen:
                seen.add(i)
                stack.append(i)
    return seen


def _edges(finals: list[Deps], offsets: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (final-state element, state element it reads), both flat indices; a Coarse final state
    couples all its elements with every index it lists (as a star around the first one)."""
    src, dst = [], []
    for d, (offset, size) in zip(finals, offsets):
        if d is None:
            continue
        own = offset + np.arange(size, dtype=np.int64)
        if isinstance(d, Coarse):
            members = np.union1d(own, d.indices)
            src.append(np.full(members.size, members[0], np.int64))
            dst.append(members)
            continue
        rows = d.reshape(size, -1)
        keep = rows >= 0
        src.append(np.broadcast_to(own[:, None], rows.shape)[keep])
        dst.append(rows[keep])
    if not src:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(src), np.concatenate(dst)


def _components(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The smallest member of each element's connected component (min-label propagation with pointer
    jumping, vectorised)."""
    label = np.arange(n, dtype=np.int64)
    while True:
        low = np.minimum(label[a], label[b])
        new = label.copy()
        np.minimum.at(new, a, low)
        np.minimum.at(new, b, low)
        while True:  # pointer jumping: each label to its label's label
            jumped = new[new]
            if np.array_equal(jumped, new):
                break
            new = jumped
        if np.array_equal(new, label):
            return label
        label = new


def _groups(n: int, label: np.ndarray) -> tuple[tuple[int, ...], ...]:
    order = np.argsort(label, kind="stable")
    cuts = np.flatnonzero(np.diff(label[order])) + 1
    return tuple(tuple(int(i) for i in g) for g in np.split(order, cuts)) if n else ()


def analyze(graph: StepGraph) -> Analysis:
    """The affinity of each final state in the states and the structure of the Jacobian
    d(final states)/d(states) over the flat state vector (states in ``graph.states`` order, each
    flattened in C order). Only final states matter: outputs may be any function of the step."""
    offsets = state_offsets(graph)
    n_total = sum(size for _, size in offsets)
    deps: dict[int, Deps] = {}
    dependent = [False] * len(graph.nodes)
    affine = [True] * len(graph.nodes)
    reads: list[frozenset[int]] = [frozenset()] * len(graph.nodes)  # which states each node reads
    for n in graph.nodes:
        deps[n.id] = node_deps(graph, n, deps, offsets)
        if n.op == Op.INPUT and n.attrs["role"] == "state":
            reads[n.id] = frozenset([n.attrs["index"]])
        elif n.inputs:
            reads[n.id] = frozenset().union(*(reads[i] for i in n.inputs))
        dependent[n.id] = bool(reads[n.id])
        if dependent[n.id]:
            affine[n.id] = _affine_node(n, dependent, affine)
    reports = []
    for k, (sid, fid) in enumerate(zip(graph.states, graph.final_states)):
        breakers = [i for i in _ancestors(graph, fid) if not affine[i]]
        names = tuple(graph.nodes[graph.states[j]].name for j in sorted(reads[fid]))
        reports.append(
            StateReport(graph.nodes[sid].name, offsets[k][1], affine[fid], min(breakers, default=None), names)
        )
    finals = [deps[f] for f in graph.final_states]
    a, b = _edges(finals, offsets)
    groups = _groups(n_total, _components(n_total, a, b))
    block = max((len(g) for g in groups), default=0)
    if all(d is None for d in finals):
        structure = "none"
    elif block == 1:
        structure = "diagonal"
    elif block <= MAX_BLOCK and block < n_total:
        structure = "block"
    else:
        structure, block, groups = "dense", n_total, (tuple(range(n_total)),)
    return Analysis(tuple(reports), all(r.affine for r in reports), structure, block, groups)
