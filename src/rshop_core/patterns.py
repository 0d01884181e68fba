"""Recognise standard recurrent cells (and stacks of them) in an execution plan's graph.

Engines with a fused kernel for a standard cell (torch's oneDNN / cuDNN LSTM, GRU and
Elman RNN) ask :func:`recognize` whether a plan is exactly such a cell, or a stack of them
each feeding the next. Matching is structural: the graph of the built-in cell with the
same sizes is built as a template and compared node by node from the new states back to
the inputs (commutative ``add``/``multiply`` in either order), binding the template's
parameters to the model's. So a hand-written step with the same ops matches as well as a
:class:`~rshop_core.cells.LSTMCell`, and anything extra in the step (a peephole, dropout
masks, a mask ``where``, a readout) makes it not match — and the reason is reported.

Templates (what the fused kernels compute, in Keras' weight layout):

- ``lstm``: :class:`LSTMCell` with tanh / sigmoid, with or without bias;
- ``gru``: :class:`GRUCell` with tanh / sigmoid, ``reset_after=True``, with or without bias;
- ``rnn_tanh`` / ``rnn_relu``: :class:`SimpleRNNCell` with tanh / relu, with or without bias.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

COMMUTATIVE = ("add", "multiply", "maximum", "minimum")
KINDS = ("lstm", "gru", "rnn_tanh", "rnn_relu")
N_STATES = {"lstm": 2, "gru": 1, "rnn_tanh": 1, "rnn_relu": 1}


@dataclass(frozen=True)
class CellMatch:
    """One recognised cell: ``params`` maps its local weight names to the plan's parameters."""

    kind: str
    input_dim: int
    units: int
    bias: bool
    params: dict  # "kernel" / "recurrent_kernel" / "bias" -> qualified name
    states: tuple  # indices of its states in the plan


@dataclass(frozen=True)
class StackMatch:
    """Cells run one after the other, each reading the previous one's output sequence."""

    layers: tuple  # CellMatch, first layer first

    def describe(self) -> str:
        kinds = [f"{m.kind}({m.input_dim}->{m.units}{'' if m.bias else ', no bias'})" for m in self.layers]
        return " -> ".join(kinds)


@lru_cache(maxsize=256)
def _template(kind: str, input_dim: int, units: int, bias: bool, dtype: str):
    from .cells import GRUCell, LSTMCell, SimpleRNNCell
    from .graph import trace
    from .symbolic import Input

    if kind == "lstm":
        cell = LSTMCell(units, use_bias=bias, name="t")
    elif kind == "gru":
        cell = GRUCell(units, use_bias=bias, reset_after=True, name="t")
    else:
        cell = SimpleRNNCell(units, activation=kind[4:], use_bias=bias, name="t")
    x = Input((input_dim,), dtype, name="x")
    states = [Input((units,), dtype, name=f"s{i}") for i in range(N_STATES[kind])]
    y, new = cell(x, states)
    return trace([x], states, [], [y], list(new), f"{kind} template")


class _Matcher:
    """Binds template nodes to graph nodes (one to one) while comparing structure."""

    def __init__(self, t, g, x_at, state_ids):
        self.t, self.g = t, g
        self.bind = {t.x[0]: x_at}
        self.bind.update(zip(t.states, state_ids))
        self.taken = {x_at: t.x[0], **{s: ts for ts, s in zip(t.states, state_ids)}}

    def same(self, ti, gi) -> bool:
        if ti in self.bind:
            return self.bind[ti] == gi
        if gi in self.taken:
            return False
        tn, gn = self.t.nodes[ti], self.g.nodes[gi]
        if tn.op != gn.op or tn.type != gn.type or len(tn.inputs) != len(gn.inputs):
            return False
        if tn.op == "input":
            return False  # inputs were bound up front; any other is not the template's
        if tn.op != "param" and tn.attrs != gn.attrs:
            return False
        if tn.op in COMMUTATIVE:
            saved = (dict(self.bind), dict(self.taken))
            if not self._all(tn.inputs, gn.inputs):
                self.bind, self.taken = dict(saved[0]), dict(saved[1])
                if not self._all(tn.inputs, gn.inputs[::-1]):
                    self.bind, self.taken = saved
                    return False
        elif not self._all(tn.inputs, gn.inputs):
            return False
        self.bind[ti], self.taken[gi] = gi, ti
        return True

    def _all(self, tis, gis) -> bool:
        return all(self.same(a, b) for a, b in zip(tis, gis))


def _match_cell(g, kind, x_at, first_state):
    n = N_STATES[kind]
    state_ids = g.states[first_state:first_state + n]
    if len(state_ids) < n:
        return None, None
    units = g.nodes[state_ids[0]].type.shape[-1]
    xt = g.nodes[x_at].type
    if xt.rank != 1 or any(g.nodes[s].type.shape != (units,) for s in state_ids):
        return None, None
    for bias in (True, False):
        t = _template(kind, xt.shape[0], units, bias, xt.dtype)
        m = _Matcher(t, g, x_at, state_ids)
        finals = g.final_states[first_state:first_state + n]
        if all(m.same(a, b) for a, b in zip(t.final_states, finals)):
            params = {t.nodes[ti].attrs["name"].split("/", 1)[1]: g.nodes[gi].attrs["name"]
                      for ti, gi in m.bind.items() if t.nodes[ti].op == "param"}
            covered = {gi for ti, gi in m.bind.items() if t.nodes[ti].op not in ("input", "param", "constant")}
            out = m.bind[t.outputs[0]]
            return CellMatch(kind, xt.shape[0], units, bias, params, tuple(range(first_state, first_state + n))), \
                (covered, out)
    return None, None


def recognize(plan):
    """``(StackMatch, "")`` when ``plan`` is a stack of standard cells, else ``(None, reason)``."""
    g = plan.graph
    if plan.scan != ("x",):
        extra = [s for s in plan.scan if s != "x"]
        return None, ("the step scans " + " and ".join(extra) if extra else "decode feeds x at every step") \
            + ", which fused kernels do not take"
    if any(src[0] != "state" for src in plan.states):
        return None, "the step carries a readout or held outputs, which fused kernels do not"
    if g.constants:
        return None, "the step reads constants (attention memory or dropout masks), which fused kernels do not take"
    if len(g.outputs) != 1:
        return None, "the step has several outputs"
    layers, covered, x_at, i = [], set(), g.x[0], 0
    while i < len(g.states):
        for kind in KINDS:
            m, extra = _match_cell(g, kind, x_at, i)
            if m is not None:
                break
        else:
            what = "first" if not layers else f"#{len(layers) + 1}"
            return None, (f"the {what} cell's step (states from #{i}) is not a standard LSTM, GRU (reset_after) "
                          "or tanh/relu RNN cell")
        layers.append(m)
        covered |= extra[0]
        x_at = extra[1]
        i += N_STATES[m.kind]
    if not layers:
        return None, "the step has no states"
    if g.outputs[0] != x_at:
        return None, "the step's output is not the last cell's new hidden state"
    busy = {n.id for n in g.nodes if n.op not in ("input", "param", "constant")}
    if busy - covered:
        return None, f"the step computes {len(busy - covered)} value(s) beyond the standard cells"
    return StackMatch(tuple(layers)), ""
