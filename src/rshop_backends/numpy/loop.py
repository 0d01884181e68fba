"""The reference loop: the definition every other engine must match.

``scan(step, P, xs, states, consts, options, length) -> (outputs, final_states)``:
``xs`` is a list of scanned sequences (batch, T, ...) — possibly empty (decode), then the
loop runs ``length`` steps — processed in reverse time order with ``go_backwards``. It is
exactly the loop in :class:`rshop_core.RecurrentModel`'s docstring; ``unroll`` cannot
change numbers and is ignored here. So is ``remat``: it only changes what a backward pass
keeps in memory, and this engine computes no gradients.
"""

from __future__ import annotations

import numpy as np


def scan(step, P, xs, states, consts, options, length):
    order = range(length - 1, -1, -1) if options.go_backwards else range(length)
    seq, ys = [], None
    states = tuple(states)
    for t in order:
        ys, states = step(P, *[x[:, t] for x in xs], states, consts)
        if options.return_sequences:
            seq.append(ys)
    if options.return_sequences:
        ys = tuple(np.stack(col, axis=1) for col in zip(*seq))
    return list(ys), list(states)
