"""Which loop over time a plan runs: sequential, the exact associative scan, or parallel Newton.

:func:`attach` reads the plan's ``time_parallel`` option and the analysis of its step graph
(:mod:`.structure`) and, when a parallel loop applies, attaches a :class:`ParallelPlan`: the
coefficient graph (the step and its forward derivatives in the seed directions, :mod:`.jvp`)
and the layout that gathers the flat state vector into coupled groups. The engines' shared
driver (``rshop_backends/parallel.py``) runs it; ``"auto"`` leaves the final say, per call, to
the engine's measured policy (``AUTO_MIN_STEPS`` in each engine's ``parallel.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

import numpy as np

from ..errors import RshopConfigError
from ..graph import StepGraph
from .jvp import group_layout, jacobian_seeds, jvp_graph
from .structure import Analysis, analyze

if TYPE_CHECKING:
    from ..execution import Plan

AUTO_MAX_BLOCK = 8  # "auto" scans coupled groups of at most this many elements (k^3 work per step)


@dataclass(frozen=True)
class ParallelPlan:
    """How a plan runs in parallel over time.

    ``kind``: ``"scan"`` (the step is affine in its states: one exact linear scan) or
    ``"newton"`` (parallel Newton iterations, each a linear scan). ``forced``: asked for by
    name (``"scan"``/``"newton"``) rather than chosen by ``"auto"``. ``coefficients``: a step
    graph with the plan's arguments whose outputs are the new states followed by their
    derivatives in each seed direction. ``layout``: (groups, k) flat state indices, -1 padding
    (None when the Jacobian is diagonal); ``inverse[i]``: where flat index i sits in
    ``layout.ravel()``. ``shapes``: the per-example shape of each state.
    """

    kind: Literal["scan", "newton"]
    forced: bool
    analysis: Analysis
    coefficients: StepGraph
    layout: np.ndarray | None
    inverse: np.ndarray | None
    shapes: tuple[tuple[int, ...], ...]
    why: str

    @property
    def width(self) -> int:
        """N, the size of the flat state vector."""
        return int(sum(int(np.prod(s, dtype=np.int64)) for s in self.shapes))

    @property
    def block(self) -> int:
        return 1 if self.layout is None else int(self.layout.shape[1])


def attach(plan: Plan) -> Plan:
    """``plan`` with ``parallel`` (a :class:`ParallelPlan` or None) and ``parallel_note`` (why)
    set from its options; ``time_parallel="scan"`` on a non-affine step and ``"newton"`` on a
    dense one raise :class:`RshopConfigError` naming the cause."""
    mode = plan.options.time_parallel
    if mode is False:
        return replace(plan, parallel=None, parallel_note="sequential: time_parallel=False")
    g = plan.graph
    if not g.states:
        return replace(plan, parallel=None, parallel_note="sequential: the plan carries no state")
    a = analyze(g)
    said = a.describe(g)
    where = f"{plan.graph_where} (time_parallel={mode!r})"
    if a.affine:
        if mode == "auto" and a.block > AUTO_MAX_BLOCK:
            return replace(
                plan,
                parallel=None,
                parallel_note=f"sequential: {said}; coupled groups of {a.block} elements cost k^3 work per step "
                "in a scan (time_parallel='scan' forces it)",
            )
        kind: Literal["scan", "newton"] = "scan"
    else:
        newton_ok = a.structure != "dense"
        if mode == "scan":
            raise RshopConfigError(
                f"{where}: expected a step whose new states are affine in its states, received one where "
                f"{said}. Use time_parallel='newton'"
                + (" (its Jacobian is " + _jacobian(a) + ")" if newton_ok else " for a diagonal Jacobian")
                + " or False."
            )
        if mode == "auto":
            hint = f"; time_parallel='newton' possible: Jacobian {_jacobian(a)}" if newton_ok else ""
            return replace(plan, parallel=None, parallel_note=f"sequential: {said}{hint}")
        if not newton_ok:
            raise RshopConfigError(
                f"{where}: expected a step whose Jacobian over its states is diagonal or block-diagonal, "
                f"received a dense one ({said}). Parallel Newton solves block systems of at most a few "
                "elements; use time_parallel=False."
            )
        kind = "newton"
    seeds = jacobian_seeds(a, g)
    coefficients = jvp_graph(g, seeds, f"{plan.graph_where} coefficients")
    layout = None if a.structure in ("diagonal", "none") else group_layout(a)
    inverse = None
    if layout is not None:
        flat = layout.ravel()
        inverse = np.empty(int(sum(len(gr) for gr in a.groups)), dtype=np.int64)
        inverse[flat[flat >= 0]] = np.nonzero(flat >= 0)[0]
    shapes = tuple(tuple(int(d) for d in g.nodes[s].type.shape) for s in g.states)
    how = "associative scan" if kind == "scan" else "parallel Newton (each iteration an associative scan)"
    pp = ParallelPlan(kind, mode != "auto", a, coefficients, layout, inverse, shapes, f"{how}: {said}")
    return replace(plan, parallel=pp, parallel_note=pp.why)


def _jacobian(a: Analysis) -> str:
    return "diagonal" if a.structure in ("diagonal", "none") else f"block-diagonal, groups of {a.block}"
