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
"""

from __future__ import annotations

import torch


def _rows(xs, length, backwards):
    """Per time step, the tuple of slices of every scanned sequence, in processing order."""
    if not xs:
        return [()] * length
    if len(xs) == 1:
        rows = [(xt,) for xt in xs[0].unbind(1)]
    else:
        rows = list(zip(*[x.unbind(1) for x in xs], strict=True))
    return rows[::-1] if backwards else rows


def scan(step, P, xs, states, consts, options, length):
    rows = _rows(list(xs), length, options.go_backwards)
    states = tuple(states)
    consts = tuple(consts)
    ys = None
    if options.return_sequences:
        seq = []
        append = seq.append
        for row in rows:
            ys, states = step(P, *row, states, consts)
            append(ys)
        ys = tuple(torch.stack(col, dim=1) for col in zip(*seq, strict=True))
    else:
        for row in rows:
            ys, states = step(P, *row, states, consts)
    return list(ys), list(states)
