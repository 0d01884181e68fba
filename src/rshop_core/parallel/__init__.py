"""Time-parallel recurrences, the backend-neutral half: what a step graph allows over time.

- :func:`analyze` (:mod:`.structure`): are the final states affine in the states, and what is the
  structure of the Jacobian d(final states)/d(states) (diagonal, block(k), dense)?
- :func:`jvp_graph` (:mod:`.jvp`): the forward-mode derivative of a step graph, written in the
  closed op set, so that every engine evaluates Jacobian columns with its ordinary generated code;
  :func:`jacobian_seeds` and :func:`group_layout` turn an analysis into the seed directions and the
  block layout that recover the Jacobian's nonzero entries.
"""

from __future__ import annotations

from .jvp import jvp_graph
from .seeds import group_layout, jacobian_seeds
from .structure import MAX_BLOCK, Analysis, StateReport, analyze

__all__ = ["MAX_BLOCK", "Analysis", "StateReport", "analyze", "group_layout", "jacobian_seeds", "jvp_graph"]
