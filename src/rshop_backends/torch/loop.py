"""The torch loop: an eager Python loop over time, autograd-friendly.

``scan(step, P, x, states, consts, options) -> (outputs, final_states)`` with ``x`` a
tensor of shape (batch, T, *input_shape); ``P`` maps qualified names to tensors;
``states``/``consts`` are lists of tensors of shape (batch, *per_example). Outputs are
lists: each (batch, T, ...) stacked in processing order with ``return_sequences``, else
the last processed step's (batch, ...).

The sequence is cut with ``x.unbind(1)`` (one autograd node for all T slices; indexing
``x[:, t]`` would make the backward pass O(T^2) in memory traffic). ``go_backwards``
walks the unbound slices in reverse. ``unroll`` has no effect: an eager Python loop is
already "unrolled" as far as torch is concerned, and the numbers are the same either way.
"""

from __future__ import annotations

import torch


def scan(step, P, x, states, consts, options):
    xs = x.unbind(1)
    if options.go_backwards:
        xs = xs[::-1]
    states = tuple(states)
    consts = tuple(consts)
    ys = None
    if options.return_sequences:
        seq = []
        append = seq.append
        for xt in xs:
            ys, states = step(P, xt, states, consts)
            append(ys)
        ys = tuple(torch.stack(col, dim=1) for col in zip(*seq, strict=True))
    else:
        for xt in xs:
            ys, states = step(P, xt, states, consts)
    return list(ys), list(states)
