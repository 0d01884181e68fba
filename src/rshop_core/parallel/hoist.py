"""Loop-invariant work of the time-parallel loop: what does not read the states is computed once.

The parallel driver evaluates a level's coefficient graph (its new states and their forward
derivatives, :mod:`.jvp`) on every time step at once, once per Newton iteration. The part of that
graph that reads no state (an input projection the ``hoist_inputs`` pass left in the step, gates
computed from x alone, the tangent factors made of them) has the same value in every iteration.

- :func:`split` cuts a step graph into a **prefix** (its state-free values that the rest reads,
  computed from the scanned inputs and constants) and a **remainder** (the rest, which scans the
  prefix's values as extra inputs). The driver runs the prefix once and the remainder per
  iteration; together they compute exactly what the whole graph computes (the same ops on the
  same values).
- :func:`at_zero_states` is the graph evaluated at states that are exactly zero, with the zeros
  folded away (``a + 0 -> a``, ``a * 0 -> 0``, ...): an affine level's coefficients
  ``b_t = f_t(0)`` and ``A_t`` without materialising a zero state or multiplying by it.

Both are backend-neutral graph rewrites (a replay and a trace, like every pass); each engine
compiles the results with its ordinary generated code.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import functional as F
from ..graph import StepGraph
from ..ops import LEAVES, Op
from ..passes.rebuild import fresh_inputs, input_like
from ..replay import replay, replay_node
from ..symbolic import Tensor, apply
from ..tracing import trace

__all__ = ["Split", "at_zero_states", "split"]

# ops that are never moved out of the iterations: a random op draws anew where it runs
_PINNED = (Op.DROPOUT,)


@dataclass(frozen=True)
class Split:
    """A step graph cut in two. ``prefix``: the graph's scanned inputs and constants (no states) ->
    the hoisted values, in order; ``remainder``: scans ``[x[k] for k in keep]`` followed by the
    hoisted values, carries the graph's states and has its outputs and new states."""

    prefix: StepGraph
    remainder: StepGraph
    keep: tuple[int, ...]

    @property
    def hoisted(self) -> int:
        """How many values the prefix computes."""
        return len(self.prefix.outputs)


def state_free(graph: StepGraph) -> set[int]:
    """The ids of the nodes that compute something per example from scanned inputs, constants,
    parameters and literals only (not from a state, and not a random op)."""
    batched = set(graph.x) | set(graph.constants)
    free: set[int] = set()
    for n in graph.nodes:
        if n.op in LEAVES or n.op in _PINNED:
            continue
        srcs = [graph.nodes[i] for i in n.inputs]
        reads_sequence = any(i in free or i in batched for i in n.inputs)
        if reads_sequence and all(
            i in free or i in batched or s.op in (Op.PARAM, Op.CONSTANT) for i, s in zip(n.inputs, srcs)
        ):
            free.add(n.id)
    return free


def split(graph: StepGraph, where: str) -> Split | None:
    """``graph`` as a state-free prefix and the remainder that reads its values; None when no node
    computing something is state-free (nothing to hoist)."""
    free = state_free(graph)
    if not free:
        return None
    returned = set(graph.outputs) | set(graph.final_states)
    readers: dict[int, set[int]] = {}
    for n in graph.nodes:
        for i in n.inputs:
            readers.setdefault(i, set()).add(n.id)
    frontier = [i for i in sorted(free) if i in returned or readers.get(i, set()) - free]
    # the prefix: the graph's x and constants -> the frontier values
    env, xs, _, consts = fresh_inputs(graph)
    pre = _replay_only(graph, free, env)
    prefix = trace(xs, [], consts, [pre[i] for i in frontier], [], f"{where} (state-free prefix)")
    # the remainder: the frontier values arrive as scanned inputs
    env, xs, states, consts = fresh_inputs(graph)
    scanned = {i: input_like(graph.nodes[i], f"hoisted_{i}") for i in frontier}
    body = replay(graph, env, lambda n, a: scanned.get(n.id))
    live = _live(graph, set(frontier))
    keep = tuple(k for k, i in enumerate(graph.x) if i in live)
    remainder = trace(
        [xs[k] for k in keep] + [scanned[i] for i in frontier],
        states,
        consts,
        [body[i] for i in graph.outputs],
        [body[i] for i in graph.final_states],
        f"{where} (state-dependent remainder)",
    )
    return Split(prefix, remainder, keep)


def _replay_only(graph: StepGraph, nodes: set[int], env: dict[int, Tensor]) -> dict[int, Tensor]:
    """Replay ``nodes`` of ``graph`` (with the leaves they read) over the inputs in ``env``."""
    out = dict(env)
    for n in graph.nodes:
        if n.id in nodes:
            args = []
            for i in n.inputs:
                if i not in out:  # a parameter or literal
                    out[i] = replay_node(graph, graph.nodes[i], [])
                args.append(out[i])
            out[n.id] = replay_node(graph, n, args)
    return out


def _live(graph: StepGraph, cut: set[int]) -> set[int]:
    """The nodes the outputs and new states read once the values in ``cut`` arrive as inputs."""
    live: set[int] = set()
    todo = [*graph.outputs, *graph.final_states]
    while todo:
        i = todo.pop()
        if i in live:
            continue
        live.add(i)
        if i not in cut:
            todo.extend(graph.nodes[i].inputs)
    return live


def at_zero_states(graph: StepGraph, where: str) -> StepGraph | None:
    """``graph`` with every state exactly zero, folded: its scanned inputs and constants -> its outputs
    (no state argument, no new states). None when a zero reaches an op without a folding rule or
    an output is itself zero (the caller then evaluates ``graph`` at zero states instead).

    The rules are exact in the graph's own arithmetic for finite values: ``a + 0 = a``,
    ``a - 0 = a``, ``0 - a = -a``, ``a * 0 = 0``, ``0 @ w = 0``, ``-0 = 0``, ``where(c, a, 0)`` with a literal zero,
    and a reshape, transpose, slice or split of zeros is zeros; an add or subtract keeps its other
    argument only when that has the result's shape (no broadcast to materialise)."""
    env, xs, _, consts = fresh_inputs(graph)
    zero = set(graph.states)
    out: dict[int, Tensor] = {}
    for n in graph.nodes:
        if n.id in zero:
            continue
        if n.op == Op.INPUT:
            out[n.id] = env[n.id]
            continue
        zeros = [i in zero for i in n.inputs]
        if not any(zeros):
            out[n.id] = replay_node(graph, n, [out[i] for i in n.inputs])
            continue
        folded = _fold(graph, n, zeros, [out.get(i) for i in n.inputs])
        if folded is _GIVE_UP:
            return None
        if folded is None:
            zero.add(n.id)
        else:
            assert isinstance(folded, Tensor)
            out[n.id] = folded
    if any(i in zero for i in graph.outputs):
        return None
    return trace(xs, [], consts, [out[i] for i in graph.outputs], [], f"{where} (at zero states)")


_GIVE_UP = object()
_SHAPE_OPS = (Op.RESHAPE, Op.TRANSPOSE, Op.SLICE, Op.SPLIT)


def _fold(graph: StepGraph, n: object, zeros: list[bool], args: list[Tensor | None]) -> Tensor | object | None:
    """The value of node ``n`` some of whose arguments are zero (``zeros``): a Tensor, None for an
    exact zero of ``n``'s type, or ``_GIVE_UP``."""
    from ..graph import Node

    assert isinstance(n, Node)

    def kept(k: int) -> Tensor | object:
        a = args[k]
        return a if a is not None and a.type == n.type else _GIVE_UP

    if n.op == Op.ADD:
        return None if all(zeros) else kept(1 if zeros[0] else 0)
    if n.op == Op.SUBTRACT:
        if all(zeros):
            return None
        if zeros[1]:
            return kept(0)
        b = kept(1)
        return b if b is _GIVE_UP else apply(Op.NEGATIVE, [b], {}, name=n.name)
    if n.op in (Op.MULTIPLY, Op.MATMUL, Op.EINSUM, Op.NEGATIVE, *_SHAPE_OPS):
        return None
    if n.op == Op.WHERE and not zeros[0]:
        if zeros[1] and zeros[2]:
            return None
        k = 2 if zeros[1] else 1
        other = kept(k)
        if not isinstance(other, Tensor) or args[0] is None:
            return _GIVE_UP
        return F.where(args[0], 0.0, other) if k == 2 else F.where(args[0], other, 0.0)
    return _GIVE_UP
