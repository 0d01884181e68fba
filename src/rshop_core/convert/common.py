"""What the torch and Keras converters share: a framework-neutral description of one built-in
cell run over time (:class:`CellSpec`), building an rshop model from one, recognising one in an
rshop model, and :class:`SequenceStack` (layers applied one after another over whole sequences).

Nothing here imports a framework.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field, replace

import numpy as np

from .. import activations, initializers
from ..bidirectional import Bidirectional
from ..cells import GRUCell, LSTMCell, SimpleRNNCell
from ..errors import RshopConfigError
from ..model import RecurrentModel
from ..sequential import RecurrentSequential

GATES = {"rnn": 1, "gru": 3, "lstm": 4}
CELLS = {"rnn": SimpleRNNCell, "gru": GRUCell, "lstm": LSTMCell}
_ZEROS = initializers.get("zeros")


@dataclass
class CellSpec:
    """One built-in cell: its kind (``"rnn"``, ``"gru"``, ``"lstm"``), sizes, equations and weights.

    ``weights`` holds ``kernel`` (in, n units), ``recurrent_kernel`` (units, n units) and, with
    ``use_bias``, ``bias`` in rshop's (= Keras') layout, as float32 numpy arrays.
    """

    kind: str
    units: int
    input_dim: int
    activation: str = "tanh"
    recurrent_activation: str = "sigmoid"
    use_bias: bool = True
    reset_after: bool = True
    dropout: float = 0.0
    recurrent_dropout: float = 0.0
    regularizers: dict = field(default_factory=dict)  # kernel / recurrent / bias -> {"l1": a, "l2": b}
    weights: dict = field(default_factory=dict)

    def cell(self, name=None):
        kw = {"activation": self.activation, "use_bias": self.use_bias, "dropout": self.dropout,
              "recurrent_dropout": self.recurrent_dropout, "name": name,
              **{f"{k}_regularizer": v for k, v in self.regularizers.items()}}
        if self.kind != "rnn":
            kw["recurrent_activation"] = self.recurrent_activation
        if self.kind == "gru":
            kw["reset_after"] = self.reset_after
        return CELLS[self.kind](self.units, input_dim=self.input_dim, **kw)


def _local(qualified):
    return qualified.rsplit("/", 1)[-1]


def set_cell_weights(model, specs, prefix=""):
    """Set ``model``'s weights from ``specs`` (one per cell, in the order the graph first uses them)."""
    groups = param_groups(model)
    if len(groups) != len(specs):
        raise RshopConfigError(f"convert: expected {len(specs)} cell(s) in {model.name!r}, found {len(groups)}.")
    weights = {}
    for spec, names in zip(specs, groups):
        for q in names:
            weights[q] = np.asarray(spec.weights[_local(q)], dtype=model.dtype)
    model.set_weights(weights)
    return model


def param_groups(model) -> list:
    """The model's parameter names grouped by owner prefix, in order of first use in the step graph."""
    groups: dict = {}
    for n in model.graph.nodes:
        if n.op == "param":
            q = n.attrs["name"]
            groups.setdefault(q.rsplit("/", 1)[0], []).append(q)
    return list(groups.values())


def build_model(spec: CellSpec, name: str, **options) -> RecurrentModel:
    """A RecurrentModel running ``spec``'s cell, with ``spec``'s weights."""
    model = spec.cell(f"{name}_cell").get_layer(name=name, seed=0, **options)
    return set_cell_weights(model, [spec])


def build_stack(specs: list, name: str, **options) -> RecurrentSequential:
    """A RecurrentSequential of ``specs``' cells (each layer's output feeds the next at every step)."""
    seq = RecurrentSequential(name=name, seed=0, **options)
    for i, spec in enumerate(specs):
        seq.add(spec.cell(f"{name}_cell_{i}"))
    seq.build()
    return set_cell_weights(seq, specs)


def build_bidirectional(fwd: CellSpec, bwd: CellSpec, merge_mode, name: str, **options) -> Bidirectional:
    """A Bidirectional whose forward and backward copies hold ``fwd``'s and ``bwd``'s weights."""
    bi = Bidirectional(build_model(fwd, name, **options), merge_mode=merge_mode, name=f"bidirectional_{name}")
    set_cell_weights(bi.forward, [fwd])
    set_cell_weights(bi.backward, [bwd])
    bi.set_weights({**bi.forward.get_weights(), **bi.backward.get_weights()})
    return bi


# -- recognising a built-in cell in a model --------------------------------------------------
def _signature(model):
    """The step graph without names: what must agree for two models to compute the same thing."""
    g = model.graph
    nodes = []
    for n in g.nodes:
        attrs = {"local": _local(n.attrs["name"])} if n.op == "param" else n.attrs
        nodes.append((n.op, n.inputs, json.dumps(attrs, sort_keys=True, default=repr), n.type.to_json()))
    return nodes, g.x, g.states, g.constants, g.outputs, g.final_states


def _dropouts(model) -> tuple:
    rates = {"dropout": 0.0, "recurrent_dropout": 0.0}
    for n in model.graph.nodes:
        if n.op == "dropout":
            rates[_local(n.name) if _local(n.name) in rates else "dropout"] = float(n.attrs["rate"])
    return rates["dropout"], rates["recurrent_dropout"]


def _owner_cell(model):
    owners = {id(o): o for o, _ in model.graph.meta.get("param_owners", {}).values() if o is not None}
    if len(owners) == 1:
        (cell,) = owners.values()
        if type(cell) in CELLS.values():
            return cell
    return None


def _name_of(fn):
    for name in activations.names():
        if activations.get(name) is fn:
            return name
    return None


def _candidates(model, kind, units, input_dim, bias_shape):
    """Every CellSpec (without weights) that could have produced ``model``: the cell's own settings
    first when the model still knows its cell, else each activation pair."""
    dropout, recurrent_dropout = _dropouts(model)
    regs, keys = {}, {"kernel": "kernel", "recurrent_kernel": "recurrent", "bias": "bias"}
    for q, p in model.param_specs.items():
        if p.regularizer and _local(q) in keys:  # anything else fails the graph comparison anyway
            regs[keys[_local(q)]] = p.regularizer
    base = CellSpec(kind, units, input_dim, use_bias=bias_shape is not None, dropout=dropout,
                    recurrent_dropout=recurrent_dropout, regularizers=regs)
    resets = [len(bias_shape) == 2] if kind == "gru" and bias_shape is not None else [True, False]
    cell = _owner_cell(model)
    if cell is not None and isinstance(cell, CELLS[kind]):
        yield replace(base, activation=_name_of(cell.activation),
                      recurrent_activation=_name_of(getattr(cell, "recurrent_activation", None)) or "sigmoid",
                      reset_after=getattr(cell, "reset_after", True))
    names = activations.names()
    preferred = ["tanh", "sigmoid", "relu"] + [n for n in names if n not in ("tanh", "sigmoid", "relu")]
    rec = preferred if kind != "rnn" else ["sigmoid"]
    for act, ract, reset in itertools.product(preferred, rec, resets if kind == "gru" else [True]):
        yield replace(base, activation=act, recurrent_activation=ract, reset_after=reset)


def describe(model, where: str) -> CellSpec:
    """The :class:`CellSpec` (weights included) of a model that runs exactly one built-in cell, or an
    RshopConfigError saying why ``model`` is not one. Loop options are not checked here."""
    if not isinstance(model, RecurrentModel) or isinstance(model, RecurrentSequential):
        raise RshopConfigError(f"{where}: expected a RecurrentModel of one built-in cell, received {model!r}.")
    model._require_built()
    groups = param_groups(model)
    weights = {_local(q): v for q, v in model.get_weights().items()}
    if len(groups) != 1 or not {"kernel", "recurrent_kernel"} <= set(weights) or model.readout_spec is not None \
            or model.graph.constants:
        raise RshopConfigError(f"{where}: expected a model running one built-in cell (SimpleRNNCell, GRUCell, "
                               f"LSTMCell), received {model.name!r} with parameters {sorted(model.params)}.")
    k, r = weights["kernel"], weights["recurrent_kernel"]
    units, input_dim, n = r.shape[0], k.shape[0], r.shape[1] // max(r.shape[0], 1)
    kind = {1: "rnn", 3: "gru", 4: "lstm"}.get(n)
    bias = weights.get("bias")
    if kind is not None and model.dtype == "float32":
        want = _signature(model)
        for cand in _candidates(model, kind, units, input_dim, None if bias is None else bias.shape):
            try:
                ref = cand.cell("probe").get_layer(seed=0)
            except RshopConfigError:
                continue
            if _signature(ref) == want:
                cand.weights = {k: v.copy() for k, v in weights.items()}
                return cand
    raise RshopConfigError(f"{where}: expected a float32 model whose step is exactly one SimpleRNNCell, GRUCell or "
                           f"LSTMCell, received {model.name!r} ({model.dtype}), whose step graph is not one. Only "
                           "models made by cell.get_layer(...), from_torch or from_keras (or copies) convert.")


def check_plain_loop(model, where: str, allowed=()) -> None:
    """Refuse loop options a framework layer cannot express (those in ``allowed`` are the caller's)."""
    o = model.options
    for flag in ("go_backwards", "teacher_force", "decode", "stateful", "zero_output_for_mask"):
        if getattr(o, flag) and flag not in allowed:
            raise RshopConfigError(f"{where}: expected a model without {flag}=True, received {model.name!r} with it; "
                                   "the target framework has no such option.")
    for s in model.state_specs:
        if s.initializer != _ZEROS:
            raise RshopConfigError(f"{where}: expected zero initial states, received state_initializer "
                                   f"{s.initializer!r} for state {s.name!r} of {model.name!r}.")


# -- stacks ----------------------------------------------------------------------------------
class SequenceStack:
    """Layers applied one after another over whole sequences: layer i+1 reads layer i's (first) output.

    This is what a stack of *bidirectional* layers is (each layer's merged outputs, for all time
    steps, feed the next), which one RecurrentSequential step cannot express. It has no weights of
    its own. ``stack.lower(engine, dtype)`` returns a callable running each lowered layer in turn on
    that engine's arrays; its result is ``(y, *states)``: the last layer's output(s), then the states
    of every layer that returns states, layer by layer (``initial_state=`` takes them in that order).
    ``get_weights()`` / ``set_weights()`` use the names ``layer_<i>/<layer's name>``.
    """

    def __init__(self, layers, name="sequence_stack"):
        self.layers, self.name = list(layers), name
        if not self.layers:
            raise RshopConfigError("SequenceStack: expected at least one layer, received none.")

    def __repr__(self):
        return f"<SequenceStack {self.name!r} of {len(self.layers)} layers>"

    @property
    def input_shape(self):
        return self.layers[0].input_shape

    def _n_states(self, layer):
        return len(layer.state_specs) if layer.options.return_states else 0

    def get_weights(self) -> dict:
        return {f"layer_{i}/{k}": v for i, layer in enumerate(self.layers) for k, v in layer.get_weights().items()}

    def set_weights(self, weights: dict) -> None:
        for i, layer in enumerate(self.layers):
            prefix = f"layer_{i}/"
            layer.set_weights({k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)})
        known = set(self.get_weights())
        extra = [k for k in weights if k not in known]
        if extra:
            raise RshopConfigError(f"SequenceStack {self.name!r}: unexpected weights {extra}.")

    def lower(self, engine=None, dtype=None):
        return _LoweredStack(self, [layer.lower(engine, dtype) for layer in self.layers])


class _LoweredStack:
    def __init__(self, stack, lowered):
        self.stack, self.lowered = stack, lowered

    def __call__(self, x, initial_state=None, constants=None, **kwargs):
        if constants:
            raise RshopConfigError(f"SequenceStack {self.stack.name!r}: expected no constants, received some.")
        counts = [len(layer.state_specs) for layer in self.stack.layers]
        if initial_state is not None and len(initial_state) != sum(counts):
            raise RshopConfigError(f"SequenceStack {self.stack.name!r}: expected {sum(counts)} initial states, "
                                   f"received {len(initial_state)}.")
        states, k, out = [], 0, None
        for layer, low, n in zip(self.stack.layers, self.lowered, counts):
            init = None if initial_state is None else list(initial_state[k:k + n])
            k += n
            out = low(x, initial_state=init, **kwargs)
            out = out if isinstance(out, tuple) else (out,)
            m = self.stack._n_states(layer)
            head, tail = (out[:-m], out[-m:]) if m else (out, ())
            states.extend(tail)
            x = head[0]
        result = (*head, *states)
        return result if len(result) > 1 else result[0]


def describe_stack(seq, where: str) -> list:
    """The CellSpecs (weights included) of a RecurrentSequential of built-in cells only (no plain
    layers, state_sync or readout), or an RshopConfigError."""
    seq._require_built()
    kinds = {cls: kind for kind, cls in CELLS.items()}
    groups = param_groups(seq)
    if seq.state_sync or seq.readout is not False or len(seq.items) != len(seq.cells) \
            or any(type(c) not in kinds for c in seq.cells) or len(groups) != len(seq.cells):
        raise RshopConfigError(f"{where}: expected a RecurrentSequential of SimpleRNNCell, GRUCell or LSTMCell items "
                               f"only, without state_sync or readout, received {seq.name!r} with {seq.items}.")
    w, specs = seq.get_weights(), []
    for cell, names in zip(seq.cells, groups):
        weights = {_local(q): w[q] for q in names}
        regs = {{"kernel": "kernel", "recurrent_kernel": "recurrent", "bias": "bias"}[_local(q)]: seq.param_specs[q]
                .regularizer for q in names if seq.param_specs[q].regularizer}
        specs.append(CellSpec(kinds[type(cell)], cell.units, weights["kernel"].shape[0],
                              activation=_name_of(cell.activation),
                              recurrent_activation=_name_of(getattr(cell, "recurrent_activation", None)) or "sigmoid",
                              use_bias=cell.use_bias, reset_after=getattr(cell, "reset_after", True),
                              dropout=cell.dropout, recurrent_dropout=cell.recurrent_dropout, regularizers=regs,
                              weights=weights))
    if seq.dtype != "float32" or _signature(build_stack(specs, "probe")) != _signature(seq):
        raise RshopConfigError(f"{where}: expected a float32 stack whose step is exactly its cells, received "
                               f"{seq.name!r}.")
    return specs
