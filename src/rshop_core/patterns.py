"""Recognise built-in recurrent cells (and stacks of them) in a step graph, by structure.

One matcher serves two callers: torch's fast path (:func:`recognize`, on an execution plan:
is this a stack of cells torch's fused kernels compute?) and the torch / Keras converters
(:func:`match_stack`, on a model's step graph: which built-in cell is this, with which
options and which parameter in which role?).

Matching is structural and takes a few milliseconds whatever the sizes: the graph of the
built-in cell with the same sizes is built once as a template (cached) and compared node by
node from the new states back to the inputs (commutative ``add``/``multiply`` in either
order), binding the template's parameters to the model's. The template's options are not
enumerated: its activation nodes are *slots* that match any activation op of
:mod:`rshop_core.activations` (or none, for ``linear``), the same one wherever the slot
appears, and its dropout nodes match a ``dropout`` op of any rate (or none). So a
hand-written step with the same ops matches as well as a :class:`~rshop_core.cells.LSTMCell`,
and anything extra in the step (a peephole, a mask ``where``, a readout) makes it not match
— and the reason is reported.

Templates (Keras' weight layout), tried per cell in this order, with and without bias:

- ``lstm``: :class:`LSTMCell`;
- ``gru``: :class:`GRUCell`, ``reset_after=True`` then ``False``;
- ``rnn``: :class:`SimpleRNNCell`.

torch's fused kernels compute LSTM and GRU (``reset_after``) with tanh / sigmoid and Elman
RNNs with tanh or relu, without dropout: :attr:`CellMatch.kernel` names the kernel, or is
None.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import TYPE_CHECKING, Any

from .graph import StepGraph
from .ops import LEAVES, Op

if TYPE_CHECKING:
    from .execution import Plan

COMMUTATIVE = (Op.ADD, Op.MULTIPLY, Op.MAXIMUM, Op.MINIMUM)
KINDS = ("lstm", "gru", "rnn")
N_STATES = {"lstm": 2, "gru": 1, "rnn": 1}
VARIANTS = {
    "lstm": ((True, True), (False, True)),  # (use_bias, reset_after), in the order tried
    "gru": ((True, True), (False, True), (True, False), (False, False)),
    "rnn": ((True, True), (False, True)),
}
SLOTS = ("activation", "recurrent_activation", "dropout", "recurrent_dropout")
NOT_STANDARD = "is not a standard LSTM, GRU (reset_after) or tanh/relu RNN cell"


@dataclass(frozen=True)
class CellMatch:
    """One recognised cell: its kind (``"rnn"``, ``"gru"``, ``"lstm"``), sizes and options, and
    ``params``: its roles (``"kernel"``, ``"recurrent_kernel"``, ``"bias"``) -> the graph's
    qualified parameter names. ``states`` are the indices of its states in the graph.
    ``recurrent_activation`` and ``reset_after`` keep their defaults where the kind has none."""

    kind: str
    input_dim: int
    units: int
    bias: bool
    params: dict[str, str]
    states: tuple[int, ...]
    activation: str = "tanh"
    recurrent_activation: str = "sigmoid"
    reset_after: bool = True
    dropout: float = 0.0
    recurrent_dropout: float = 0.0

    @property
    def kernel(self) -> str | None:
        """The torch kernel computing this cell (``"lstm"``, ``"gru"``, ``"rnn_tanh"``, ``"rnn_relu"``),
        or None when there is none (other activations, ``reset_after=False``, dropout)."""
        if self.dropout or self.recurrent_dropout:
            return None
        if self.kind == "rnn":
            return f"rnn_{self.activation}" if self.activation in ("tanh", "relu") else None
        if (self.activation, self.recurrent_activation) != ("tanh", "sigmoid") or not self.reset_after:
            return None
        return self.kind

    def summary(self) -> str:
        """``lstm(4->5)`` for a cell torch computes; the options that differ otherwise."""
        extra = [] if self.bias else ["no bias"]
        if self.kernel is None:
            extra.append(f"activation={self.activation}")
            if self.kind != "rnn":
                extra.append(f"recurrent_activation={self.recurrent_activation}")
            if self.kind == "gru":
                extra.append(f"reset_after={self.reset_after}")
            extra += [f"{k}={getattr(self, k)}" for k in ("dropout", "recurrent_dropout") if getattr(self, k)]
        return f"{self.kernel or self.kind}({self.input_dim}->{self.units}{''.join(', ' + e for e in extra)})"


@dataclass(frozen=True)
class StackMatch:
    """Cells run one after the other, each reading the previous one's output sequence."""

    layers: tuple[CellMatch, ...]  # first layer first

    def describe(self) -> str:
        return " -> ".join(m.summary() for m in self.layers)


@cache
def _activation_ops() -> dict[tuple[str, str], str]:
    """``(op, attrs as JSON)`` -> activation name, for every activation that is one op."""
    from . import activations
    from .symbolic import Input

    x = Input((1,), name="x")
    table: dict[tuple[str, str], str] = {}
    for name in activations.names():
        y = activations.get(name)(x)
        if y is not x and len(y.inputs) == 1 and y.inputs[0] is x:  # one op reading x (not a composition such as mish)
            table[(y.op, json.dumps(y.attrs, sort_keys=True))] = name
    return table


@lru_cache(maxsize=256)
def _template(
    kind: str, input_dim: int, units: int, bias: bool, reset_after: bool, dtype: str
) -> tuple[StepGraph, dict[int, str]]:
    """The cell's graph at these sizes; its activation nodes are named for their slot, and it
    has both dropouts (rate 0.5: any rate matches, and so does none)."""
    from . import functional as F
    from .cells import GRUCell, LSTMCell, SimpleRNNCell
    from .symbolic import Input
    from .tracing import trace

    opts: dict[str, Any] = {"use_bias": bias, "dropout": 0.5, "recurrent_dropout": 0.5, "name": "t"}
    cell: LSTMCell | GRUCell | SimpleRNNCell
    if kind == "lstm":
        cell = LSTMCell(units, **opts)
    elif kind == "gru":
        cell = GRUCell(units, reset_after=reset_after, **opts)
    else:
        cell = SimpleRNNCell(units, **opts)
    cell.activation = lambda v: F.tanh(v, name="activation")
    if not isinstance(cell, SimpleRNNCell):
        cell.recurrent_activation = lambda v: F.tanh(v, name="recurrent_activation")
    x = Input((input_dim,), dtype, name="x")
    states = [Input((units,), dtype, name=f"s{i}") for i in range(N_STATES[kind])]
    y, new = cell(x, states)
    g = trace([x], states, [], [y], list(new), f"{kind} template")
    slots = {n.id: n.name.rsplit("/", 1)[-1] for n in g.nodes if n.name.rsplit("/", 1)[-1] in SLOTS}
    return g, slots


class _Matcher:
    """Binds template nodes to graph nodes (one to one) while comparing structure; ``chosen``
    holds what each slot turned out to be (an activation name, or a dropout rate)."""

    def __init__(self, t: StepGraph, slots: dict[int, str], g: StepGraph, x_at: int, state_ids: tuple[int, ...]):
        self.t, self.slots, self.g = t, slots, g
        self.bind: dict[int, int] = {t.x[0]: x_at}  # template node id -> graph node id
        self.bind.update(zip(t.states, state_ids))
        self.taken: dict[int, int] = {x_at: t.x[0], **{s: ts for ts, s in zip(t.states, state_ids)}}
        self.chosen: dict[str, float | str] = {}

    def _save(self) -> tuple[dict[int, int], dict[int, int], dict[str, float | str]]:
        return dict(self.bind), dict(self.taken), dict(self.chosen)

    def _restore(self, saved: tuple[dict[int, int], dict[int, int], dict[str, float | str]]) -> None:
        self.bind, self.taken, self.chosen = dict(saved[0]), dict(saved[1]), dict(saved[2])

    def same(self, ti: int, gi: int) -> bool:
        if ti in self.bind:
            return self.bind[ti] == gi
        if ti in self.slots:
            return self._slot(ti, gi)
        if gi in self.taken:
            return False
        tn, gn = self.t.nodes[ti], self.g.nodes[gi]
        if tn.op != gn.op or tn.type != gn.type or len(tn.inputs) != len(gn.inputs):
            return False
        if tn.op == Op.INPUT:
            return False  # inputs were bound up front; any other is not the template's
        if tn.op != Op.PARAM and tn.attrs != gn.attrs:
            return False
        if tn.op in COMMUTATIVE:
            saved = self._save()
            if not self._all(tn.inputs, gn.inputs):
                self._restore(saved)
                if not self._all(tn.inputs, gn.inputs[::-1]):
                    self._restore(saved)
                    return False
        elif not self._all(tn.inputs, gn.inputs):
            return False
        self.bind[ti], self.taken[gi] = gi, ti
        return True

    def _slot(self, ti: int, gi: int) -> bool:
        """A slot node is either the graph's op of that kind (the same one wherever the slot is
        used) applied to what the template applies it to, or absent (``linear`` / no dropout)."""
        slot, tn, gn = self.slots[ti], self.t.nodes[ti], self.g.nodes[gi]
        was = self.chosen.get(slot)
        value: float | str | None
        absent: float | str
        if slot.endswith("dropout"):
            value = float(gn.attrs["rate"]) if gn.op == Op.DROPOUT else None
            absent = 0.0
        else:
            value = _activation_ops().get((gn.op, json.dumps(gn.attrs, sort_keys=True)))
            absent = "linear"
        if value is not None and was in (None, value) and gi not in self.taken and gn.type == tn.type:
            saved = self._save()
            self.chosen[slot] = value
            if self.same(tn.inputs[0], gn.inputs[0]):
                self.bind[ti], self.taken[gi] = gi, ti
                return True
            self._restore(saved)
        if was in (None, absent):
            saved = self._save()
            self.chosen[slot] = absent
            if self.same(tn.inputs[0], gi):
                return True
            self._restore(saved)
        return False

    def _all(self, tis: tuple[int, ...], gis: tuple[int, ...]) -> bool:
        return all(self.same(a, b) for a, b in zip(tis, gis))

    def resolve(self, ti: int) -> int:
        """The graph node template node ``ti`` matched (an absent slot is its input's)."""
        while ti not in self.bind:
            ti = self.t.nodes[ti].inputs[0]
        return self.bind[ti]


def _match_cell(
    g: StepGraph, kind: str, x_at: int, first_state: int
) -> tuple[CellMatch, tuple[set[int], int]] | tuple[None, None]:
    """``(CellMatch, (node ids it computes, its output's id))`` for the cell of ``kind`` reading
    node ``x_at`` and the graph's states from ``first_state``, or ``(None, None)``."""
    n = N_STATES[kind]
    state_ids = g.states[first_state : first_state + n]
    if len(state_ids) < n:
        return None, None
    units = g.nodes[state_ids[0]].type.shape[-1]
    xt = g.nodes[x_at].type
    if xt.rank != 1 or any(g.nodes[s].type.shape != (units,) for s in state_ids):
        return None, None
    finals = g.final_states[first_state : first_state + n]
    for bias, reset_after in VARIANTS[kind]:
        t, slots = _template(kind, xt.shape[0], units, bias, reset_after, xt.dtype)
        m = _Matcher(t, slots, g, x_at, state_ids)
        if all(m.same(a, b) for a, b in zip(t.final_states, finals)):
            params = {
                t.nodes[ti].attrs["name"].split("/", 1)[1]: g.nodes[gi].attrs["name"]
                for ti, gi in m.bind.items()
                if t.nodes[ti].op == Op.PARAM
            }
            covered = {gi for ti, gi in m.bind.items() if t.nodes[ti].op not in LEAVES}
            out = m.resolve(t.outputs[0])
            options: dict[str, Any] = {k: m.chosen[k] for k in SLOTS if k in m.chosen}
            if kind == "gru":
                options["reset_after"] = reset_after
            match = CellMatch(
                kind, xt.shape[0], units, bias, params, tuple(range(first_state, first_state + n)), **options
            )
            return match, (covered, out)
    return None, None


def match_stack(g: StepGraph) -> tuple[StackMatch | None, str]:
    """``(StackMatch, "")`` when step graph ``g`` computes exactly built-in cells, each reading the
    previous one's output (the first reads x), else ``(None, reason)``."""
    if g.constants:
        return None, "the step reads constants (attention memory or dropout masks), which fused kernels do not take"
    if len(g.outputs) != 1:
        return None, "the step has several outputs"
    if len(g.x) != 1:
        return None, f"the step reads {len(g.x)} inputs, where a cell reads one"
    x_dtype = g.nodes[g.x[0]].type.dtype
    if x_dtype not in ("float32", "float64"):
        return None, f"the step reads a {x_dtype} x (ids or a mask), where fused kernels read floats"
    layers: list[CellMatch] = []
    covered: set[int] = set()
    x_at, i = g.x[0], 0
    while i < len(g.states):
        for kind in KINDS:
            m, extra = _match_cell(g, kind, x_at, i)
            if m is not None:
                break
        else:
            what = "first" if not layers else f"#{len(layers) + 1}"
            return None, f"the {what} cell's step (states from #{i}) {NOT_STANDARD}"
        assert extra is not None, "a cell matched with what it computes"
        layers.append(m)
        covered |= extra[0]
        x_at = extra[1]
        i += N_STATES[m.kind]
    if not layers:
        return None, "the step has no states"
    if g.outputs[0] != x_at:
        return None, "the step's output is not the last cell's new hidden state"
    busy = {n.id for n in g.nodes if n.op not in LEAVES}
    if busy - covered:
        return None, f"the step computes {len(busy - covered)} value(s) beyond the standard cells"
    return StackMatch(tuple(layers)), ""


def recognize(plan: Plan) -> tuple[StackMatch | None, str]:
    """``(StackMatch, "")`` when ``plan`` is a stack of cells torch's fused kernels compute (every
    layer's :attr:`CellMatch.kernel` is set), else ``(None, reason)``."""
    if plan.scan != ("x",):
        extra = [s for s in plan.scan if s != "x"]
        return None, (
            "the step scans " + " and ".join(extra) if extra else "decode feeds x at every step"
        ) + ", which fused kernels do not take"
    if any(src[0] != "state" for src in plan.states):
        return None, "the step carries a readout or held outputs, which fused kernels do not"
    match, why = match_stack(plan.graph)
    if match is None:
        return None, why
    for i, m in enumerate(match.layers):
        if m.kernel is None:
            what = "first" if i == 0 else f"#{i + 1}"
            return None, f"the {what} cell, {m.summary()}, {NOT_STANDARD} (the ones torch's fused kernels compute)"
    return match, ""
