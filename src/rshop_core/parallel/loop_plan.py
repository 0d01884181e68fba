"""Which loop over time a plan runs: sequential, the exact associative scan, or parallel Newton.

:func:`attach` reads the plan's ``time_parallel`` option and the analysis of its step graph
(:mod:`.structure`) and, when a parallel loop applies, attaches a :class:`ParallelPlan`. Its
states are solved in **levels**: the strongly connected groups of "state i's new value reads
state j", in dependency order. A level sees the states of earlier levels as known sequences
(their values at t - 1), so a state that only follows others — an output held through masked
steps, a running sum of a nonlinear readout — is affine in itself and scans exactly even when
the states it follows need Newton. Each level has its own step graph, its coefficient graph
(its new states and their forward derivatives in the seed directions, :mod:`.jvp`) and the
layout that gathers its flat state vector into coupled groups. The engines' shared
driver (``rshop_backends/parallel.py``) runs it; ``"auto"`` leaves the final say, per call, to
the engine's measured policy (``AUTO_MIN_STEPS`` in each engine's ``parallel.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np

from .. import custom_ops
from ..errors import RshopConfigError
from ..graph import StepGraph
from ..replay import replay
from ..symbolic import Input, Tensor
from ..tracing import trace
from .hoist import Split, at_zero_states, split
from .jvp import jvp_graph
from .seeds import group_layout, jacobian_seeds
from .structure import Analysis, analyze

AUTO_MAX_BLOCK = 8  # "auto" scans coupled groups of at most this many elements (k^3 work per step)


@dataclass(frozen=True)
class Level:
    """States solved together. ``states``: their indices among the plan graph's states;
    ``upstream``: the earlier levels' states this level reads, scanned as extra inputs after the
    plan's own (their values at t - 1); ``graph``: the level's step (x, upstream, constants
    scanned or fixed as in the plan; its states carried); ``kind``: ``"scan"`` (affine) or
    ``"newton"``; ``coefficients``: its new states followed by their derivatives in each seed
    direction; ``layout``: (groups, k) flat indices, -1 padding (None when the Jacobian is
    diagonal); ``inverse[i]``: where flat index i sits in ``layout.ravel()``; ``shapes``: the
    per-example shape of each of its states. ``zero``: the coefficients at zero states with the
    zeros folded away (a scan level, when every zero folds: :func:`.hoist.at_zero_states`);
    ``split``: the coefficients as a state-free prefix, computed once, and the remainder that
    each Newton iteration evaluates (a Newton level with something to hoist: :func:`.hoist.split`)."""

    states: tuple[int, ...]
    upstream: tuple[int, ...]
    kind: Literal["scan", "newton"]
    analysis: Analysis
    graph: StepGraph
    coefficients: StepGraph
    layout: np.ndarray | None
    inverse: np.ndarray | None
    shapes: tuple[tuple[int, ...], ...]
    zero: StepGraph | None = None
    split: Split | None = None

    @property
    def width(self) -> int:
        """N, the size of the level's flat state vector."""
        return int(sum(int(np.prod(s, dtype=np.int64)) for s in self.shapes))

    @property
    def block(self) -> int:
        return 1 if self.layout is None else int(self.layout.shape[1])


@dataclass(frozen=True)
class ParallelPlan:
    """How a plan runs in parallel over time: its ``levels`` in dependency order. ``kind``:
    ``"newton"`` when a level iterates, else ``"scan"``; ``forced``: asked for by name
    (``"scan"``/``"newton"``) rather than chosen by ``"auto"``; ``why``: for ``explain()``."""

    kind: Literal["scan", "newton"]
    forced: bool
    levels: tuple[Level, ...]
    why: str

    @property
    def shapes(self) -> tuple[tuple[int, ...], ...]:
        return tuple(s for level in self.levels for s in level.shapes)

    @property
    def width(self) -> int:
        """N, the size of the whole flat state vector (every level's)."""
        return sum(level.width for level in self.levels)


def attach(plan: Any) -> Any:  # an execution Plan (whose module imports this one's types)
    """``plan`` with ``parallel`` (a :class:`ParallelPlan` or None) and ``parallel_note`` (why)
    set from its options; ``time_parallel="scan"`` on a non-affine step and ``"newton"`` on a
    dense one raise :class:`RshopConfigError` naming the cause."""
    mode = plan.options.time_parallel
    if mode is False:
        return replace(plan, parallel=None, parallel_note="sequential: time_parallel=False")
    g = plan.graph
    if not g.states:
        return replace(plan, parallel=None, parallel_note="sequential: the plan carries no state")
    where = f"{plan.graph_where} (time_parallel={mode!r})"
    unknown = [g.nodes[s].name for s in g.states if None in g.nodes[s].type.shape]
    if unknown:
        said = f"state {unknown[0]!r} has a dimension unknown until the call"
        if mode != "auto":
            raise RshopConfigError(
                f"{where}: expected states of known per-example shapes, received one where {said}. "
                "Use time_parallel=False."
            )
        return replace(plan, parallel=None, parallel_note=f"sequential: {said}")
    custom = custom_ops.state_reader(g)  # no derivative rule: neither scan nor Newton can run it
    if custom is not None:
        said = f"node %{custom.id} {custom.name!r} (custom op {custom.attrs['op']!r}) reads the states"
        if mode != "auto":
            raise RshopConfigError(
                f"{where}: expected the states to pass through built-in ops only, received a step where {said}; "
                "a custom op has no derivative rule for the time-parallel loop. Use time_parallel=False."
            )
        return replace(plan, parallel=None, parallel_note=f"sequential: {said} (a custom op has no derivative rule)")
    order = _levels(g, analyze(g))
    graphs = [_level_graph(g, states, _upstream(order, i), plan.graph_where) for i, states in enumerate(order)]
    analyses = [analyze(lg) for lg in graphs]
    said = "; ".join(a.describe(lg) for a, lg in zip(analyses, graphs))
    nonaffine = [a for a in analyses if not a.affine]
    dense = [a for a in nonaffine if a.structure == "dense"]
    if mode == "scan" and nonaffine:
        a = nonaffine[0]
        lg = graphs[analyses.index(a)]
        dense_one = a.structure == "dense"
        hint = "'newton' for a diagonal Jacobian" if dense_one else f"'newton' (its Jacobian is {_jacobian(a)})"
        raise RshopConfigError(
            f"{where}: expected a step whose new states are affine in its states, received one where "
            f"{a.describe(lg)}. Use time_parallel={hint} or False."
        )
    if mode == "newton" and dense:
        a = dense[0]
        raise RshopConfigError(
            f"{where}: expected a step whose Jacobian over its states is diagonal or block-diagonal, "
            f"received a dense one ({a.describe(graphs[analyses.index(a)])}). Parallel Newton solves block "
            "systems of a few elements; use time_parallel=False."
        )
    if mode == "auto":
        if nonaffine:
            hint = "" if dense else f"; time_parallel='newton' possible: Jacobian {_jacobian(nonaffine[0])}"
            return replace(plan, parallel=None, parallel_note=f"sequential: {said}{hint}")
        big = max(a.block for a in analyses)
        if big > AUTO_MAX_BLOCK:
            return replace(
                plan,
                parallel=None,
                parallel_note=f"sequential: {said}; coupled groups of {big} elements cost k^3 work per step "
                "in a scan (time_parallel='scan' forces it)",
            )
    levels = tuple(
        _level(g, states, _upstream(order, i), lg, a, plan.graph_where)
        for i, (states, lg, a) in enumerate(zip(order, graphs, analyses))
    )
    kind: Literal["scan", "newton"] = "newton" if nonaffine else "scan"
    how = "associative scan" if kind == "scan" else "parallel Newton (each iteration an associative scan)"
    if len(levels) > 1:
        how += f" in {len(levels)} levels"
    pp = ParallelPlan(kind, mode != "auto", levels, f"{how}: {said}")
    return replace(plan, parallel=pp, parallel_note=pp.why)


def _levels(g: StepGraph, a: Analysis) -> list[tuple[int, ...]]:
    """The strongly connected groups of the states' "reads" relation, each after those it reads."""
    n = len(g.states)
    index = {g.nodes[s].name: i for i, s in enumerate(g.states)}
    if len(index) != n:  # names not unique: one level
        return [tuple(range(n))]
    reach = np.eye(n, dtype=bool)
    for i, report in enumerate(a.states):
        for name in report.depends_on:
            reach[i, index[name]] = True
    for k in range(n):  # transitive closure
        reach |= reach[:, k : k + 1] & reach[k : k + 1, :]
    groups: list[tuple[int, ...]] = []
    seen: set[int] = set()
    for i in range(n):
        if i not in seen:
            members = tuple(j for j in range(n) if reach[i, j] and reach[j, i])
            seen.update(members)
            groups.append(members)
    # a group reads only groups that reach fewer states: order by how many states each reaches
    return sorted(groups, key=lambda m: int(reach[m[0]].sum()))


def _upstream(order: list[tuple[int, ...]], i: int) -> tuple[int, ...]:
    return tuple(s for level in order[:i] for s in level)


def _level_graph(g: StepGraph, states: tuple[int, ...], upstream: tuple[int, ...], where: str) -> StepGraph:
    """The step of one level: the plan's step with ``upstream`` states scanned (after the plan's
    own scanned inputs) and only ``states`` carried."""
    if len(states) == len(g.states):
        return g
    env: dict[int, Tensor] = {}

    def like(i: int) -> Tensor:
        node = g.nodes[i]
        env[i] = Input(node.type.shape, node.type.dtype, name=node.name)
        return env[i]

    xs = [like(i) for i in g.x] + [like(g.states[j]) for j in upstream]
    carried = [like(g.states[j]) for j in states]
    for j, sid in enumerate(g.states):
        if j not in states and j not in upstream:
            like(sid)  # read by no final state of this level
    consts = [like(i) for i in g.constants]
    out = replay(g, env)
    finals = [out[g.final_states[j]] for j in states]
    return trace(xs, carried, consts, finals, finals, f"{where} level {list(states)}")


def _level(
    g: StepGraph,
    states: tuple[int, ...],
    upstream: tuple[int, ...],
    lg: StepGraph,
    a: Analysis,
    where: str,
) -> Level:
    seeds = jacobian_seeds(a, lg)
    coefficients = jvp_graph(lg, seeds, f"{where} coefficients of level {list(states)}")
    layout = None if a.structure in ("diagonal", "none") else group_layout(a)
    inverse = None
    if layout is not None:
        flat = layout.ravel()
        inverse = np.empty(int(sum(len(gr) for gr in a.groups)), dtype=np.int64)
        inverse[flat[flat >= 0]] = np.nonzero(flat >= 0)[0]
    shapes = tuple(tuple(int(d) for d in g.nodes[g.states[j]].type.shape) for j in states)
    kind: Literal["scan", "newton"] = "scan" if a.affine else "newton"
    name = f"{where} coefficients of level {list(states)}"
    zero = at_zero_states(coefficients, name) if kind == "scan" else None
    cut = split(coefficients, name) if kind == "newton" else None
    return Level(states, upstream, kind, a, lg, coefficients, layout, inverse, shapes, zero, cut)


def _jacobian(a: Analysis) -> str:
    return "diagonal" if a.structure in ("diagonal", "none") else f"block-diagonal, groups of {a.block}"
