"""The reference loop: the definition every other engine must match.

``scan(step, P, xs, states, consts, options, length) -> (outputs, final_states)``:
``xs`` is a list of scanned sequences (batch, T, ...) — possibly empty (decode), then the
loop runs ``length`` steps — processed in reverse time order with ``go_backwards``. It is
exactly the loop in :class:`rshop_core.RecurrentModel`'s docstring; ``unroll`` cannot
change numbers and is ignored here. So is ``remat``: it only changes what a backward pass
keeps in memory, and this engine computes no gradients.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from rshop_core.options import LoopOptions

    from ..codegen import GeneratedStep


def scan(
    step: GeneratedStep,
    P: dict[str, Any],
    xs: list[Any],
    states: list[Any],
    consts: list[Any],
    options: LoopOptions,
    length: int | None,
) -> tuple[list[Any], list[Any]]:
    """The loop over time: ``(outputs, final states)``, outputs (batch, T, ...) with ``return_sequences``."""
    assert length is not None, "numpy arrays have known shapes"
    order = range(length - 1, -1, -1) if options.go_backwards else range(length)
    seq: list[Sequence[Any]] = []
    ys: Sequence[Any] = ()
    carried: Sequence[Any] = tuple(states)
    for t in order:
        ys, carried = step(P, *[x[:, t] for x in xs], carried, consts)
        if options.return_sequences:
            seq.append(ys)
    if options.return_sequences:
        ys = tuple(np.stack(col, axis=1) for col in zip(*seq))
    return list(ys), list(carried)
