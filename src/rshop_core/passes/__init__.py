"""IR -> IR optimisation passes over execution plans, and the per-engine pipelines.

A pipeline is a tuple of pass names run in order on a plan (:mod:`rshop_core.execution`).
Every pass keeps the numbers (within float rounding: ``split_gates`` and ``fuse_matmuls``
change the order of additions) and is tested to (``tests/conformance/test_passes.py``: outputs
and gradients with and without each pass, on every engine; ``tests/unit/test_passes.py``: what
each pass rewrites).

==============  =====  ===============================================================
pass            kind   what it does
==============  =====  ===============================================================
cse             graph  merge duplicate nodes (same op, attributes and inputs)
fuse_matmuls    graph  ``a @ W1, a @ W2`` -> ``a @ [W1|W2]`` split back
split_gates     graph  split of ``x@W + h@U + b`` -> per-gate matmuls and adds
licm            plan   parameter-only values computed once per call (a prologue)
hoist_inputs    plan   ``x_t @ W`` (and what depends on x alone) for all T before the loop
==============  =====  ===============================================================

Dead-code elimination is part of every rebuild (only what the outputs and states read is
traced again). Engines name their default pipeline (``PASSES`` in each engine module); of it,
a pass runs only where the cost rule (:mod:`.cost`) finds it adds no work to the time loop.
``model.lower(engine, passes=...)`` overrides it (and runs exactly those passes) and
``layer.explain()`` says what ran, and why not where a pass did not.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from ..errors import RshopConfigError
from ..graph import StepGraph
from .algebra import fuse_matmuls, split_gates
from .cleanup import cse
from .cost import LoopCost, loop_cost, verdict
from .motion import Hoisted, hoist_inputs, licm

if TYPE_CHECKING:
    from ..execution import Plan

# a graph pass: (graph, where) -> (graph, what it did or None); a plan pass likewise on a plan
GRAPH_PASSES: dict[str, Callable[[StepGraph, str], tuple[StepGraph, str | None]]] = {
    "cse": cse,
    "fuse_matmuls": fuse_matmuls,
    "split_gates": split_gates,
}
PLAN_PASSES: dict[str, Callable[[Plan, str], tuple[Plan, str | None]]] = {"licm": licm, "hoist_inputs": hoist_inputs}
ORDER = ("cse", "fuse_matmuls", "split_gates", "licm", "hoist_inputs")  # the only valid order

__all__ = ["ORDER", "Hoisted", "LoopCost", "check_pipeline", "loop_cost", "optimize"]


def check_pipeline(passes: object, where: str) -> tuple[str, ...]:
    """``passes`` as a tuple of known pass names in pipeline order (each at most once)."""
    if isinstance(passes, str) or not isinstance(passes, (list, tuple)):
        raise RshopConfigError(f"{where}: expected a list of pass names from {list(ORDER)}, received {passes!r}.")
    names = tuple(passes)
    unknown = [p for p in names if p not in ORDER]
    if unknown:
        raise RshopConfigError(f"{where}: expected pass names from {list(ORDER)}, received {unknown}.")
    if len(set(names)) != len(names):
        raise RshopConfigError(f"{where}: expected each pass at most once, received {list(names)}.")
    return tuple(p for p in ORDER if p in names)


def optimize(plan: Plan, passes: tuple[str, ...], cost_rule: bool = False, per_op: bool = False) -> Plan:
    """``plan`` after ``passes`` (checked names, pipeline order); its ``report`` says what each did.

    ``cost_rule``: a pass whose result adds work to the time loop is dropped (:func:`.cost.verdict`;
    ``per_op``: operations count as work too); the report says so, with the numbers. Engines set it
    for their default pipelines."""
    where = f"{plan.graph_where} optimized"
    report = []
    ran = []
    for name in passes:
        if name in GRAPH_PASSES:
            graph, said = GRAPH_PASSES[name](plan.graph, where)
            new = replace(plan, graph=graph)
        else:
            new, said = PLAN_PASSES[name](plan, where)
        refused = verdict(loop_cost(plan.graph), loop_cost(new.graph), per_op) if cost_rule and said else None
        if refused is None:
            plan = new
            ran.append(name)
        report.append((name, refused or said or "no change"))
    return replace(plan, key=plan.key + (tuple(ran) if cost_rule else passes,), report=tuple(report))
