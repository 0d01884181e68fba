"""The cost rule: which passes of an engine's default pipeline run on a given step.

A pass of a default pipeline is kept only when it adds no work to the time loop: after it, the
loop's step (the plan's ``graph``; what runs T times) has no more matrix products and no more
multiply-adds per example than before it. Work moved *out* of the loop (``licm``'s prologue,
``hoist_inputs``' time-parallel part) is done once per call, not T times, so it is not counted.

What the rule keeps and drops, and why (measured in ``bench/passes.py``; docs/performance.md,
"Which passes run: the cost rule"):

- ``cse``, ``fuse_matmuls``, ``licm``, ``hoist_inputs`` only ever remove products or move them out
  of the loop: kept wherever they change something.
- ``split_gates`` turns one ``x @ W`` per gate group into one product per gate: the FLOPs stay, the
  products multiply (an LSTM's 2 become 8; an RHN written one ``Dense`` per matrix gets its
  products back after ``fuse_matmuls`` joined them). Small products cost XLA a kernel each, in
  the forward, the backward and in compile time, so the rule drops it, except where a slice
  leaves part of a product unread (then it saves FLOPs).

An engine whose loop pays for every operation (eager torch: a dispatch and an autograd node per
op, whatever its size; ``EngineSpec.per_op_loop``) also refuses a pass that adds operations to the
step: ``fuse_matmuls`` on an RHN turns two ``addmm`` per gate into a shared product, two slices and
two adds (measured: forward+backward 12% slower in CPU time than no passes, bench/passes.py).

An explicit ``lower(engine, passes=[...])`` runs exactly the passes asked for; the rule applies to
the engine's defaults (``passes=None``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..graph import StepGraph
from ..ops import Op

_PRODUCTS = (Op.MATMUL, Op.EINSUM)


@dataclass(frozen=True)
class LoopCost:
    """The work of one step of the time loop, per example: ``products`` (matmul and einsum
    nodes), ``flops`` (multiply-adds of those), ``nodes`` (operations, leaves excluded)."""

    products: int
    flops: int
    nodes: int

    def __str__(self) -> str:
        return f"{self.products} matrix product(s), {self.flops} multiply-adds per example"


def _size(dims: tuple) -> int:
    return math.prod(1 if d is None else int(d) for d in dims)


def _flops(graph: StepGraph, node_id: int) -> int:
    n = graph.nodes[node_id]
    if n.op == Op.MATMUL:  # (..., k) x (k, n): one multiply-add per output element and k
        return _size(n.type.shape) * _size(graph.nodes[n.inputs[0]].type.shape[-1:])
    # einsum: one multiply-add per combination of every index of the equation
    lhs = n.attrs["equation"].split("->")[0].split(",")
    sizes: dict[str, int] = {}
    for letters, i in zip(lhs, n.inputs):
        shape = graph.nodes[i].type.shape
        sizes.update(zip(letters.strip(), (1 if d is None else int(d) for d in shape[-len(letters.strip()) :])))
    return math.prod(sizes.values())


def loop_cost(graph: StepGraph) -> LoopCost:
    """The :class:`LoopCost` of running ``graph`` once (only what its results read counts)."""
    live = set(graph.outputs) | set(graph.final_states)
    for n in reversed(graph.nodes):
        if n.id in live:
            live.update(n.inputs)
    products = [n.id for n in graph.nodes if n.id in live and n.op in _PRODUCTS]
    nodes = sum(1 for n in graph.nodes if n.id in live and n.op not in (Op.INPUT, Op.PARAM, Op.CONSTANT))
    return LoopCost(len(products), sum(_flops(graph, i) for i in products), nodes)


def verdict(before: LoopCost, after: LoopCost, per_op: bool = False) -> str | None:
    """None when a pass that took the loop from ``before`` to ``after`` is kept, else why not.

    ``per_op``: the engine's loop pays for every operation of the step (an eager loop: a dispatch
    and an autograd node each), so a pass may not add operations either."""
    if after.flops < before.flops:
        return None  # less arithmetic in the loop, whatever the number of products
    if after.products > before.products:
        return (
            f"not run (cost rule): {before.products} -> {after.products} matrix products per step for the same "
            f"{before.flops} multiply-adds; a default pass may not add work to the time loop"
        )
    if after.flops > before.flops:
        return f"not run (cost rule): {before.flops} -> {after.flops} multiply-adds per example per step"
    if per_op and after.nodes > before.nodes:
        return (
            f"not run (cost rule): {before.nodes} -> {after.nodes} operations per step, and this engine's loop "
            "pays for each operation"
        )
    return None
