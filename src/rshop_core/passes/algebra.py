"""Passes that rewrite linear algebra: split before the add, one matmul for shared operands.

``split_gates``: a ``split`` (or ``slice``) of ``x @ W + h @ U + b`` along the last axis
becomes, per piece, ``x @ W[:, piece] + h @ U[:, piece] + b[piece]`` (the flax
``OptimizedLSTMCell`` formulation). The slices of parameters do not depend on the step, so
the ``licm`` pass computes them once per call. What it buys is in XLA's backward pass:
each gate's gradient flows into its own small matmul instead of a concatenation.

``fuse_matmuls``: ``a @ W1``, ``a @ W2``, ... on the same operand ``a`` with parameters of the
same row count become one ``a @ concat([W1, W2, ...])`` whose result is split back: one
large matmul in place of several small ones (typical of cells written one ``Dense`` per
gate). The concatenation of parameters is loop-invariant (``licm``).
"""

from __future__ import annotations

from .. import functional as F
from ..graph import Node, StepGraph
from ..ops import Op
from ..replay import param_tensor, replay
from ..symbolic import Tensor
from .rebuild import fresh_inputs, live_count, retrace

_LINEAR = (Op.ADD, Op.SUBTRACT, Op.MATMUL)
# Wider pre-activations are left whole: on this CPU, XLA's backward gained from splitting 512 wide
# gates (LSTM, hidden 128: W1/W2 forward+backward -10 to -15%) and lost from splitting 1024 wide ones
# (hidden 256, W3: +7%), where one wide matmul beats four narrow ones. See docs/performance.md.
SPLIT_MAX_WIDTH = 512


def _full_on(t: Tensor, axis: int, size: int) -> bool:
    """Whether ``t`` spans ``size`` on ``axis`` (negative) rather than broadcasting there."""
    return t.type.rank >= -axis and t.type.shape[axis] == size


def _piece(t: Tensor, axis: int, begin: int, end: int, size: int, counts: dict[str, int]) -> Tensor:
    """``t[..., begin:end]`` (on ``axis``) pushed through adds and right-hand matmuls."""
    if t.op in (Op.ADD, Op.SUBTRACT):
        a, b = (_piece(u, axis, begin, end, size, counts) if _full_on(u, axis, size) else u for u in t.inputs)
        counts["pushed"] += 1
        return F.add(a, b) if t.op == Op.ADD else F.subtract(a, b)
    if t.op == Op.MATMUL and axis == -1:
        counts["pushed"] += 1
        a, w = t.inputs
        return F.matmul(a, _piece(w, axis, begin, end, size, counts))
    return F.slice(t, begin, end, axis=axis)


def split_gates(graph: StepGraph, where: str) -> tuple[StepGraph, str | None]:
    """Push every last-axis ``split``/``slice`` of an add/matmul tree down to the parameters."""
    counts = {"pushed": 0, "cuts": 0, "wide": 0}
    memo: dict[tuple[int, int, int], Tensor] = {}

    def rewrite(n: Node, args: list[Tensor]) -> Tensor | None:
        if n.op not in (Op.SPLIT, Op.SLICE) or n.attrs["axis"] != -1 or args[0].op not in _LINEAR:
            return None
        src = args[0]
        if src.type.shape[-1] > SPLIT_MAX_WIDTH:
            counts["wide"] += 1
            return None
        if n.op == Op.SPLIT:
            sizes, k = n.attrs["sizes"], n.attrs["index"]
            begin, end = sum(sizes[:k]), sum(sizes[: k + 1])
        else:
            begin, end = n.attrs["begin"], n.attrs["end"]
        key = (src.uid, begin, end)
        if key not in memo:
            memo[key] = _piece(src, -1, begin, end, src.type.shape[-1], counts)
            counts["cuts"] += 1
        return memo[key]

    env, xs, states, consts = fresh_inputs(graph)
    out = replay(graph, env, rewrite)
    if not counts["cuts"]:
        return graph, (f"skipped: gates wider than {SPLIT_MAX_WIDTH} stay whole" if counts["wide"] else None)
    new = retrace(graph, out, xs, states, consts, where)
    return new, (
        f"{counts['cuts']} gate slice(s) pushed through {counts['pushed']} add/matmul node(s) "
        f"({live_count(graph)} -> {live_count(new)} nodes)"
    )


def _same_stage(graph: StepGraph, groups: dict) -> dict:
    """Each group of products on one operand cut into stages: two products stay apart when one's result
    leads to an operation that reads the other (an attention's ``h @ U_a`` feeds the context that meets
    the gates' ``h @ U_g``). Apart, the later product can run beside the chain that the earlier one starts
    (XLA's CPU runtime and tensorflow's executor run independent operations at once); fused, all of it
    runs before that chain (measured: an attention decoder's forward 1.28x slower on jax, forward +
    backward 1.19x on tensorflow, docs/performance.md). The keys gain a stage index."""
    below: dict[int, int] = {}  # node id -> bit set of the nodes its result reaches
    readers: dict[int, list[int]] = {}
    for n in graph.nodes:
        for i in n.inputs:
            readers.setdefault(i, []).append(n.id)
    for n in reversed(graph.nodes):
        bits = 0
        for r in readers.get(n.id, ()):
            bits |= below[r] | (1 << r)
        below[n.id] = bits
    consumers = {i: sum(1 << r for r in readers.get(i, ())) for ids in groups.values() for i in ids}

    def apart(a: int, b: int) -> bool:
        return bool(below[a] & consumers[b]) or bool(below[b] & consumers[a])

    out: dict = {}
    for key, ids in groups.items():
        stages: list[list[int]] = []
        for i in ids:
            home = next((st for st in stages if not any(apart(i, j) for j in st)), None)
            if home is None:
                stages.append([i])
            else:
                home.append(i)
        out.update({(*key, k): st for k, st in enumerate(stages)})
    return out


def fuse_matmuls(graph: StepGraph, where: str) -> tuple[StepGraph, str | None]:
    """One matmul per operand for every group of matmuls that share it (parameters on the right)."""
    groups: dict[tuple[int, int, str], list[int]] = {}  # (left operand id, rows, dtype) -> [matmul node ids]
    for n in graph.nodes:
        if n.op == Op.MATMUL:
            w = graph.nodes[n.inputs[1]]
            if w.op == Op.PARAM:
                groups.setdefault((n.inputs[0], w.type.shape[0], w.type.dtype), []).append(n.id)
    shared = {k: ids for k, ids in groups.items() if len(ids) > 1}
    groups = {k: ids for k, ids in _same_stage(graph, shared).items() if len(ids) > 1}
    apart = sum(len(ids) for ids in shared.values()) - sum(len(ids) for ids in groups.values())
    why_apart = f"{apart} kept apart (read at another stage of the step)" if apart else ""
    if not groups:
        return graph, why_apart or None
    member = {i: k for k, ids in groups.items() for i in ids}
    fused: dict[tuple, dict[int, Tensor]] = {}

    def rewrite(n: Node, args: list[Tensor]) -> Tensor | None:
        key = member.get(n.id)
        if key is None:
            return None
        ids = groups[key]
        if key not in fused:
            ws = [param_tensor(graph.params[graph.nodes[graph.nodes[i].inputs[1]].attrs["name"]]) for i in ids]
            sizes = [w.type.shape[1] for w in ws]
            y = F.matmul(args[0], F.concat(ws, axis=-1, name="fused_kernel"), name="fused_matmul")
            fused[key] = dict(zip(ids, F.split(y, sizes, axis=-1, name="fused_matmul_piece")))
        return fused[key][n.id]

    env, xs, states, consts = fresh_inputs(graph)
    out = replay(graph, env, rewrite)
    new = retrace(graph, out, xs, states, consts, where)
    n_in = sum(len(ids) for ids in groups.values())
    said = f"{n_in} matmuls on {len({k[0] for k in groups})} shared operand(s) fused into {len(groups)}"
    return new, f"{said}; {why_apart}" if apart else said
