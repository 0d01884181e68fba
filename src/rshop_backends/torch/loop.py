"""The torch loop: an eager Python loop over time, autograd-friendly.

``scan(step, P, xs, states, consts, options, length) -> (outputs, final_states)``:
``xs`` is a list of scanned tensors (batch, T, ...) — x, a shifted ground truth, a bool
mask (batch, T) — possibly empty (decode), then the loop runs ``length`` steps. ``P``
maps qualified names to tensors; ``states``/``consts`` are lists of tensors of shape
(batch, *per_example). The step is called as ``step(P, *x_slices, states, consts)``.
Outputs are lists: each (batch, T, ...) stacked in processing order with
``return_sequences``, else the last processed step's (batch, ...).

Every sequence is cut with ``x.unbind(1)`` (one autograd node for all T slices; indexing
``x[:, t]`` would make the backward pass O(T^2) in memory traffic). ``go_backwards``
walks the unbound slices (of all sequences together) in reverse. ``unroll`` has no
effect: an eager Python loop is already "unrolled" as far as torch is concerned, and the
numbers are the same either way.

``remat`` (k steps per segment, :meth:`LoopOptions.remat_segment`): when autograd records
(grad enabled and some input or parameter requires grad), each segment of k steps runs
under ``torch.utils.checkpoint.checkpoint(use_reentrant=False)``: the backward pass keeps
only each segment's inputs (the states at its start and views of x) and reruns the
segment's steps to get what it differentiates. Without autograd it is the plain loop.
"""

from __future__ import annotations

import types
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.checkpoint import checkpoint

if TYPE_CHECKING:
    from rshop_backends.codegen import GeneratedStep
    from rshop_core.options import LoopOptions


def _rows(xs: Any, length: Any, backwards: Any) -> Any:
    """Per time step, the tuple of slices of every scanned sequence, in processing order."""
    if not xs:
        return [()] * length
    rows = [(xt,) for xt in xs[0].unbind(1)] if len(xs) == 1 else list(zip(*[x.unbind(1) for x in xs], strict=True))
    return rows[::-1] if backwards else rows


def _records(P: Any, xs: Any, states: Any, consts: Any) -> bool:
    """Whether autograd would record this loop (remat only pays off then)."""
    if not torch.is_grad_enabled():
        return False
    return any(isinstance(t, torch.Tensor) and t.requires_grad for t in (*P.values(), *xs, *states, *consts))


def scan(
    step: GeneratedStep,
    P: dict[str, Any],
    xs: Sequence[Any],
    states: Sequence[Any],
    consts: Sequence[Any],
    options: LoopOptions,
    length: int,
) -> tuple[list[Any], list[Any]]:
    """The loop over time: ``(outputs, final states)`` (see the module's docstring)."""
    states = tuple(states)
    consts = tuple(consts)
    segment = options.remat_segment(length)
    if segment is not None and _records(P, xs, states, consts):
        return _remat_scan(step, P, list(xs), states, consts, options, length, segment)
    rows = _rows(list(xs), length, options.go_backwards)
    ys: Sequence[Any] = ()  # T >= 1: set by the first step
    if options.return_sequences:
        seq: list[Sequence[Any]] = []
        append = seq.append
        for row in rows:
            ys, states = step(P, *row, states, consts)
            append(ys)
        ys = tuple(torch.stack(col, dim=1) for col in zip(*seq, strict=True))
    else:
        for row in rows:
            ys, states = step(P, *row, states, consts)
    return list(ys), list(states)


def _segment(step: Any, P: Any, consts: Any, steps: Any, backwards: Any, keep: Any) -> Any:
    """The function one checkpoint runs: ``steps`` steps from ``states`` over the slices ``seg``
    (batch, steps, ...) of the scanned sequences; returns (outputs, states) with outputs
    stacked (batch, steps, ...) when ``keep``, else the segment's last."""

    def run(seg: Any, states: Any) -> Any:
        seq: list[Sequence[Any]] = []
        ys: Sequence[Any] = ()
        for row in _rows(seg, steps, backwards):
            ys, states = step(P, *row, states, consts)
            if keep:
                seq.append(ys)
        if keep:
            ys = tuple(torch.stack(col, dim=1) for col in zip(*seq, strict=True))
        return tuple(ys), tuple(states)

    return run


def _remat_scan(step: Any, P: Any, xs: Any, states: Any, consts: Any, options: Any, length: Any, k: Any) -> Any:
    backwards, keep = options.go_backwards, options.return_sequences
    sizes = [k] * (length // k) + ([length % k] if length % k else [])  # segment lengths, processing order
    # One split per sequence (one autograd node: its backward concatenates once); narrowing
    # per segment would make the backward O(T^2) (a zero-filled full-length gradient per segment).
    cuts = [x.split(sizes[::-1] if backwards else sizes, dim=1) for x in xs]
    if backwards:
        cuts = [c[::-1] for c in cuts]
    pieces: list[Sequence[Any]] = []
    ys: Sequence[Any] = ()
    for i, n in enumerate(sizes):
        run = _segment(step, P, consts, n, backwards, keep)
        ys, states = checkpoint(run, [c[i] for c in cuts], states, use_reentrant=False)
        if keep:
            pieces.append(ys)
    if keep:
        ys = tuple(cols[0] if len(cols) == 1 else torch.cat(cols, dim=1) for cols in zip(*pieces, strict=True))
    return list(ys), list(states)


def _literals_traced(step: GeneratedStep) -> GeneratedStep:
    """``step`` reading copies of its tensor literals (``_c*`` globals) made in the running trace:
    torch's scan cannot lift a real tensor its body closes over (it clones it in fake mode)."""
    g = dict(step.__globals__)
    literals = [k for k, v in g.items() if k.startswith("_c") and isinstance(v, torch.Tensor)]
    if not literals:
        return step
    g.update({k: g[k].clone() for k in literals})
    out: Any = types.FunctionType(step.__code__, g, step.__name__)  # a GeneratedStep once its source is set
    out.__rshop_source__ = step.__rshop_source__
    return out


def scan_op(
    step: GeneratedStep,
    P: dict[str, Any],
    xs: Sequence[Any],
    states: Sequence[Any],
    consts: Sequence[Any],
    options: LoopOptions,
    length: int,
) -> tuple[list[Any], list[Any]]:
    """:func:`scan` as one ``torch._higher_order_ops.scan`` (the loop stays a loop in the graph).

    For ``torch.export`` with a dynamic T, where the Python loop would specialise T to the
    example's. ``xs`` must not be empty (decode has no scanned sequence: it keeps the Python loop).
    """
    from torch._higher_order_ops.scan import scan as _scan

    step = _literals_traced(step)
    # nor tensors that alias each other: values computed before the loop (views of one split) are copied
    P = {k: v if isinstance(v, torch.nn.Parameter) else v.clone() for k, v in P.items()}
    consts = tuple(c.clone() for c in consts)
    n_states = len(states)

    def body(carry: Any, row: Any) -> Any:
        ys, new = step(P, *row, tuple(carry), consts)
        # scan forbids aliasing between its outputs (an output is often also a new state)
        return [s.clone() for s in new], [y.clone() for y in ys]

    finals, ys = _scan(body, list(states), list(xs), dim=1, reverse=bool(options.go_backwards))
    # ys come stacked along dim 1 in xs' time order; the loop's outputs are in processing order
    if options.go_backwards:
        ys = [torch.flip(y, dims=(1,)) for y in ys]
    ys = ys if options.return_sequences else [y[:, -1] for y in ys]
    assert len(finals) == n_states
    return list(ys), list(finals)
