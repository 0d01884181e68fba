"""What the torch and Keras converters share: a framework-neutral description of one built-in
cell run over time (:class:`CellSpec`), building an rshop model from one, recognising one in an
rshop model (:class:`~rshop_core.SequenceStack`, layers run one after another over whole
sequences, lives in :mod:`rshop_core.stack`).

Nothing here imports a framework.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from .. import initializers, patterns
from ..bidirectional import Bidirectional
from ..cells import GRUCell, LSTMCell, SimpleRNNCell
from ..cells.base import Cell
from ..errors import RshopConfigError
from ..model import RecurrentModel
from ..patterns import CellMatch
from ..sequential import RecurrentSequential
from ..specs import ParamSpec

M = TypeVar("M", bound=RecurrentModel)

GATES = {"rnn": 1, "gru": 3, "lstm": 4}
CELLS: dict[str, type[SimpleRNNCell | GRUCell | LSTMCell]] = {"rnn": SimpleRNNCell, "gru": GRUCell, "lstm": LSTMCell}
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
    regularizers: dict[str, dict] = field(default_factory=dict)  # kernel / recurrent / bias -> {"l1": a, "l2": b}
    constraints: dict[str, dict] = field(default_factory=dict)  # kernel / recurrent / bias -> {"name": ..., ...}
    weights: dict[str, np.ndarray] = field(default_factory=dict)

    def cell(self, name: str | None = None) -> Cell:
        kw: dict[str, Any] = {
            "activation": self.activation,
            "use_bias": self.use_bias,
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "name": name,
            **{f"{k}_regularizer": v for k, v in self.regularizers.items()},
            **{f"{k}_constraint": v for k, v in self.constraints.items()},
        }
        if self.kind != "rnn":
            kw["recurrent_activation"] = self.recurrent_activation
        if self.kind == "gru":
            kw["reset_after"] = self.reset_after
        return CELLS[self.kind](self.units, input_dim=self.input_dim, **kw)


def _local(qualified: str) -> str:
    return qualified.rsplit("/", 1)[-1]


def set_cell_weights(model: M, specs: Sequence[CellSpec], prefix: str = "") -> M:
    """Set ``model``'s weights from ``specs`` (one per cell, in the order the graph first uses them)."""
    groups = param_groups(model)
    if len(groups) != len(specs):
        raise RshopConfigError(f"convert: expected {len(specs)} cell(s) in {model.name!r}, found {len(groups)}.")
    weights: dict[str, np.ndarray] = {}
    for spec, names in zip(specs, groups):
        for q in names:
            weights[q] = np.asarray(spec.weights[_local(q)], dtype=model.dtype)
    model.set_weights(weights)
    return model


def param_groups(model: RecurrentModel) -> list[list[str]]:
    """The model's parameter names grouped by owner prefix, in order of first use in the step graph."""
    groups: dict[str, list[str]] = {}
    for n in model._require_built().nodes:
        if n.op == "param":
            q = n.attrs["name"]
            groups.setdefault(q.rsplit("/", 1)[0], []).append(q)
    return list(groups.values())


def build_model(spec: CellSpec, name: str, **options: Any) -> RecurrentModel:
    """A RecurrentModel running ``spec``'s cell, with ``spec``'s weights."""
    model = spec.cell(f"{name}_cell").get_layer(name=name, seed=0, **options)
    return set_cell_weights(model, [spec])


def build_stack(specs: Sequence[CellSpec], name: str, **options: Any) -> RecurrentSequential:
    """A RecurrentSequential of ``specs``' cells (each layer's output feeds the next at every step)."""
    seq = RecurrentSequential(name=name, seed=0, **options)
    for i, spec in enumerate(specs):
        seq.add(spec.cell(f"{name}_cell_{i}"))
    seq.build()
    return set_cell_weights(seq, specs)


def build_bidirectional(
    fwd: CellSpec, bwd: CellSpec, merge_mode: str | None, name: str, **options: Any
) -> Bidirectional:
    """A Bidirectional whose forward and backward copies hold ``fwd``'s and ``bwd``'s weights."""
    bi = Bidirectional(build_model(fwd, name, **options), merge_mode=merge_mode, name=f"bidirectional_{name}")
    set_cell_weights(bi.forward, [fwd])
    set_cell_weights(bi.backward, [bwd])
    bi.set_weights({**bi.forward.get_weights(), **bi.backward.get_weights()})
    return bi


# -- recognising a built-in cell in a model --------------------------------------------------
_REGULARIZER_KEYS = {"kernel": "kernel", "recurrent_kernel": "recurrent", "bias": "bias"}


def _spec_of(m: CellMatch, weights: dict[str, np.ndarray], param_specs: dict[str, ParamSpec]) -> CellSpec:
    """The CellSpec of one recognised cell (:class:`~rshop_core.patterns.CellMatch`): its options
    as the matcher found them, its weights and regularizers by role. ``weights`` is the model's
    ``get_weights()``: copies already, so float32 arrays are taken as they are."""
    regs: dict[str, dict] = {
        _REGULARIZER_KEYS[role]: param_specs[q].regularizer  # type: ignore[misc]  # not None: filtered below
        for role, q in m.params.items()
        if param_specs[q].regularizer
    }
    cons: dict[str, dict] = {
        _REGULARIZER_KEYS[role]: param_specs[q].constraint  # type: ignore[misc]  # not None: filtered below
        for role, q in m.params.items()
        if param_specs[q].constraint
    }
    return CellSpec(
        m.kind,
        m.units,
        m.input_dim,
        activation=m.activation,
        recurrent_activation=m.recurrent_activation,
        use_bias=m.bias,
        reset_after=m.reset_after,
        dropout=float(m.dropout),
        recurrent_dropout=float(m.recurrent_dropout),
        regularizers=regs,
        constraints=cons,
        weights={role: np.asarray(weights[q], dtype=np.float32) for role, q in m.params.items()},
    )


def describe(model: object, where: str) -> CellSpec:
    """The :class:`CellSpec` (weights included) of a model that runs exactly one built-in cell, or an
    RshopConfigError saying why ``model`` is not one. Loop options are not checked here.

    Recognition is structural (:func:`rshop_core.patterns.match_stack`): milliseconds, whatever the
    sizes, and a hand-written step with the cell's ops is recognised as the cell."""
    if not isinstance(model, RecurrentModel) or isinstance(model, RecurrentSequential):
        raise RshopConfigError(f"{where}: expected a RecurrentModel of one built-in cell, received {model!r}.")
    graph = model._require_built()
    if model.dtype != "float32":
        raise RshopConfigError(
            f"{where}: expected a float32 model, received {model.name!r} ({model.dtype}); "
            "frameworks' recurrent layers hold float32 weights. Build it with dtype='float32'."
        )
    if model.readout_spec is not None:
        why = "it feeds its output back (readout)"
    else:
        match, why = patterns.match_stack(graph)
        if match is not None and len(match.layers) == 1:
            return _spec_of(match.layers[0], model.get_weights(), model.param_specs)
        if match is not None:
            why = f"it runs {len(match.layers)} cells one after the other ({match.describe()})"
    raise RshopConfigError(
        f"{where}: expected a model whose step is exactly one built-in cell (SimpleRNNCell, "
        f"GRUCell or LSTMCell), received {model.name!r}, whose step graph is not one: {why}. "
        "Convert a model made by cell.get_layer(...), from_torch or from_keras (or a copy), or a "
        "RecurrentSequential of cells."
    )


def check_plain_loop(model: RecurrentModel, where: str, allowed: Collection[str] = ()) -> None:
    """Refuse loop options a framework layer cannot express (those in ``allowed`` are the caller's)."""
    o = model.options
    for flag in ("go_backwards", "teacher_force", "decode", "stateful", "zero_output_for_mask"):
        if getattr(o, flag) and flag not in allowed:
            raise RshopConfigError(
                f"{where}: expected a model without {flag}=True, received {model.name!r} with it; "
                "the target framework has no such option."
            )
    for s in model.state_specs:
        if s.initializer != _ZEROS:
            raise RshopConfigError(
                f"{where}: expected zero initial states, received state_initializer "
                f"{s.initializer!r} for state {s.name!r} of {model.name!r}."
            )


# -- stacks ----------------------------------------------------------------------------------
def describe_stack(seq: RecurrentSequential, where: str) -> list[CellSpec]:
    """The CellSpecs (weights included) of a RecurrentSequential of built-in cells only (no plain
    layers, state_sync or readout), or an RshopConfigError."""
    graph = seq._require_built()
    kinds = {cls: kind for kind, cls in CELLS.items()}
    groups = param_groups(seq)
    if (
        seq.state_sync
        or seq.readout is not False
        or len(seq.items) != len(seq.cells)
        or any(type(c) not in kinds for c in seq.cells)
        or len(groups) != len(seq.cells)
    ):
        raise RshopConfigError(
            f"{where}: expected a RecurrentSequential of SimpleRNNCell, GRUCell or LSTMCell items "
            f"only, without state_sync or readout, received {seq.name!r} with {seq.items}."
        )
    match, why = patterns.match_stack(graph) if seq.dtype == "float32" else (None, f"its dtype is {seq.dtype}")
    if match is not None and len(match.layers) != len(seq.cells):
        why = f"its step runs {len(match.layers)} cells ({match.describe()}), not its {len(seq.cells)}"
        match = None
    if match is None:
        raise RshopConfigError(
            f"{where}: expected a float32 stack whose step is exactly its cells, received {seq.name!r}: {why}."
        )
    w = seq.get_weights()
    specs = [_spec_of(m, w, seq.param_specs) for m in match.layers]
    return specs
