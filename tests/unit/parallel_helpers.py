"""Float64 numpy evaluation of step graphs for the tests of rshop_core.parallel: the numpy engine's
generated step, random weights and states, and a central finite-difference Jacobian of the final
states in the flat state vector (the independent reference)."""

from __future__ import annotations

import math

import numpy as np

from rshop_backends import codegen
from rshop_backends.numpy import ops


def compile_graph(graph):
    """``fn(P, *xs, states, consts) -> (outputs, final_states)`` in float64 (the numpy engine's code)."""
    return codegen.generate(graph, ops.EMITTERS, ops.NAMESPACE, ops.constant, "float64", "numpy")


def _draw(rng, t, batch, scale=1.0):
    shape = (batch,) + tuple(7 if d is None else d for d in t.shape)
    if t.dtype == "bool":
        return rng.random(shape) < 0.7
    return rng.standard_normal(shape) * scale


class Point:
    """One random evaluation point of a graph: weights, x, states and constants for ``batch`` examples."""

    def __init__(self, graph, batch=3, seed=0, param_scale=0.5, state_scale=1.0):
        rng = np.random.default_rng(seed)
        self.graph, self.batch = graph, batch
        self.P = {name: rng.standard_normal(spec.shape) * param_scale for name, spec in graph.params.items()}
        nodes = graph.nodes
        self.xs = [_draw(rng, nodes[i].type, batch) for i in graph.x]
        self.states = [_draw(rng, nodes[i].type, batch, state_scale) for i in graph.states]
        self.consts = [_draw(rng, nodes[i].type, batch) for i in graph.constants]
        self.sizes = [math.prod(nodes[i].type.shape) for i in graph.states]

    def flat(self, states):
        return np.concatenate([s.reshape(self.batch, -1) for s in states], axis=1)

    def unflat(self, vec):
        out, k = [], 0
        for sid, size in zip(self.graph.states, self.sizes):
            out.append(vec[:, k : k + size].reshape((self.batch,) + self.graph.nodes[sid].type.shape))
            k += size
        return out

    def run(self, fn, states=None):
        return fn(self.P, *self.xs, self.states if states is None else states, self.consts)

    def finals(self, fn, vec):
        """The flat final states at the flat state vector ``vec``."""
        return self.flat(list(self.run(fn, self.unflat(vec))[1]))

    def jacobian(self, fn, eps=1e-6):
        """``(batch, N, N)``: d final_i / d state_j by central differences."""
        s0 = self.flat(self.states)
        n = s0.shape[1]
        J = np.zeros((self.batch, n, n))
        for j in range(n):
            e = np.zeros_like(s0)
            e[:, j] = eps
            J[:, :, j] = (self.finals(fn, s0 + e) - self.finals(fn, s0 - e)) / (2 * eps)
        return J
