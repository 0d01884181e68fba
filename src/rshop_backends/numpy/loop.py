"""The reference loop: the definition every other engine must match.

``scan(step, P, x, states, consts, options) -> (outputs, final_states)`` with
``x`` of shape (batch, T, ...). It is exactly the loop in
:class:`rshop_core.RecurrentModel`'s docstring; ``unroll`` cannot change numbers and is
ignored here.
"""

from __future__ import annotations

import numpy as np


def scan(step, P, x, states, consts, options):
    steps = x.shape[1]
    order = range(steps - 1, -1, -1) if options.go_backwards else range(steps)
    seq, ys = [], None
    states = tuple(states)
    for t in order:
        ys, states = step(P, x[:, t], states, consts)
        if options.return_sequences:
            seq.append(ys)
    if options.return_sequences:
        ys = tuple(np.stack(col, axis=1) for col in zip(*seq))
    return list(ys), list(states)
