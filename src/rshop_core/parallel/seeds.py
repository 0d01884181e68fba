"""Seed directions from an analysis: a coloring of the coupled groups.

:func:`jacobian_seeds` turns an :class:`~.structure.Analysis` into the seed directions whose tangents
(:func:`~.jvp.jvp_graph`) hold every nonzero entry of the Jacobian; :func:`group_layout` gives the flat
state indices of each group, to gather those entries into ``(n_groups, k, k)`` blocks.
"""

from __future__ import annotations

import numpy as np

from ..graph import StepGraph
from .deps import state_offsets
from .structure import Analysis

__all__ = ["jacobian_seeds", "group_layout"]


def jacobian_seeds(analysis: Analysis, graph: StepGraph) -> list[list[np.ndarray]]:
    """The coloring of the coupled groups: ``k`` (the block size) directions; direction ``c`` is 1 at
    the ``c``-th smallest member of every group (that has one), else 0, split into per-state arrays.

    For an element ``i`` of a group with members ``m_0 < ... < m_{k-1}``, the tangent of direction
    ``c`` at ``i`` is the Jacobian entry ``J[i, m_c]``: members of other groups never couple with ``i``."""
    offsets = state_offsets(graph)
    seeds = []
    for c in range(analysis.block):
        flat = np.zeros(sum(size for _, size in offsets), np.float64)
        flat[[g[c] for g in analysis.groups if len(g) > c]] = 1.0
        seeds.append(
            [
                flat[off : off + size].reshape(graph.nodes[sid].type.shape).astype(graph.nodes[sid].type.dtype)
                for (off, size), sid in zip(offsets, graph.states)
            ]
        )
    return seeds


def group_layout(analysis: Analysis) -> np.ndarray:
    """``(n_groups, k)`` flat state indices of each group's members in order, ``-1`` padding: gathers
    the flat state vector into blocks (row ``g``, column ``c`` pairs with seed direction ``c``)."""
    k = analysis.block
    index = np.full((len(analysis.groups), k), -1, np.int64)
    for r, g in enumerate(analysis.groups):
        index[r, : len(g)] = g
    return index
