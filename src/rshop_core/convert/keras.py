"""Keras 3 recurrent layers <-> rshop models, weights copied.

Keras 3 and rshop share the layouts (checked against keras/src/layers/rnn/*.py): weights in the
order ``kernel`` (in, n units), ``recurrent_kernel`` (units, n units), ``bias``: (units,),
(4 units,) for LSTM, (3 units,) for GRU ``reset_after=False`` and (2, 3 units) for
``reset_after=True`` (row 0 input, row 1 recurrent); gate columns ``[i|f|c|o]`` and ``[z|r|h]``.
So conversion copies arrays unchanged, both ways, exactly.

keras is imported only inside these functions.
"""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from .. import activations
from .. import constraints as _constraints
from ..errors import RshopConfigError
from ..lowerable import Lowerable
from ..model import RecurrentModel
from ..sequential import RecurrentSequential
from ..stack import SequenceStack
from .common import (
    CellSpec,
    build_bidirectional,
    build_model,
    build_stack,
    check_plain_loop,
    describe,
    describe_stack,
)

if TYPE_CHECKING:
    from ..bidirectional import Bidirectional

__all__ = ["from_keras", "to_keras"]

_KINDS = {"SimpleRNN": "rnn", "GRU": "gru", "LSTM": "lstm"}


def _regularizer(keras: ModuleType, reg: Any, what: str, where: str) -> dict[str, float] | None:
    if reg is None:
        return None
    r = keras.regularizers
    if type(reg) in (r.L1, r.L2, r.L1L2):
        return {"l1": float(getattr(reg, "l1", 0.0)), "l2": float(getattr(reg, "l2", 0.0))}
    raise RshopConfigError(
        f"{where}: {what}={reg!r} is not supported; expected None or a keras L1, L2 or L1L2 regularizer."
    )


def _activation(keras: ModuleType, fn: Any, what: str, where: str) -> str:
    name = keras.activations.serialize(fn)
    if not isinstance(name, str) or name not in activations.names():
        raise RshopConfigError(f"{where}: {what}={name!r} is not supported; expected one of {activations.names()}.")
    return name


def _constraint(c: Any, what: str, where: str) -> dict[str, Any] | None:
    """A keras ``MaxNorm`` / ``UnitNorm`` / ``NonNeg`` / ``MinMaxNorm`` as rshop's constraint (JSON form)."""
    try:
        return _constraints.get(c, f"{where}: {what}")
    except RshopConfigError:
        raise RshopConfigError(
            f"{where}: {what}={type(c).__module__}.{type(c).__name__} is not supported; expected None or a keras "
            "MaxNorm, UnitNorm, NonNeg or MinMaxNorm. rshop stores constraints as data, never code: convert "
            "without it and apply your projection after each optimizer step."
        ) from None


def cell_spec(keras: ModuleType, cell: Any, kind: str, where: str) -> CellSpec:
    """The CellSpec (weights included) of a built Keras ``SimpleRNNCell`` / ``GRUCell`` / ``LSTMCell``
    (``kind``: ``"rnn"``, ``"gru"``, ``"lstm"``); RshopConfigError for what rshop cannot express."""
    cons = {
        k: _constraint(getattr(cell, f"{k}_constraint", None), f"{k}_constraint", where)
        for k in ("kernel", "recurrent", "bias")
    }
    if cell.compute_dtype != "float32" or cell.variable_dtype != "float32":
        raise RshopConfigError(f"{where}: dtype policy {cell.dtype_policy.name!r} is not supported; expected float32.")
    regs = {
        k: _regularizer(keras, getattr(cell, f"{k}_regularizer"), f"{k}_regularizer", where)
        for k in ("kernel", "recurrent", "bias")
    }
    variables = {"kernel": cell.kernel, "recurrent_kernel": cell.recurrent_kernel}
    if cell.use_bias:
        variables["bias"] = cell.bias
    weights = {k: np.array(keras.ops.convert_to_numpy(v.value), dtype=np.float32) for k, v in variables.items()}
    act = _activation(keras, cell.activation, "activation", where)
    recurrent = (
        _activation(keras, cell.recurrent_activation, "recurrent_activation", where) if kind != "rnn" else "sigmoid"
    )
    return CellSpec(
        kind,
        cell.units,
        weights["kernel"].shape[0],
        act,
        recurrent,
        use_bias=cell.use_bias,
        reset_after=getattr(cell, "reset_after", True),
        dropout=float(cell.dropout),
        recurrent_dropout=float(cell.recurrent_dropout),
        regularizers={k: v for k, v in regs.items() if v},
        constraints={k: v for k, v in cons.items() if v},
        weights=weights,
    )


def _rnn_layer(keras: ModuleType, layer: Any, where: str) -> tuple[CellSpec, dict[str, bool]]:
    """(CellSpec with weights, loop options) of a built SimpleRNN / GRU / LSTM."""
    kind = next((k for name, k in _KINDS.items() if isinstance(layer, getattr(keras.layers, name))), None)
    if kind is None:
        raise RshopConfigError(
            f"{where}: expected a keras SimpleRNN, GRU, LSTM or Bidirectional layer, received "
            f"{type(layer).__name__} {getattr(layer, 'name', '')!r}."
        )
    where = f"{where}, layer {layer.name!r}"
    if not layer.built:
        raise RshopConfigError(
            f"{where}: expected a built layer (call it once, or layer.build((None, None, "
            "features))), received an unbuilt one: it has no weights yet."
        )
    if layer.stateful:
        raise RshopConfigError(
            f"{where}: stateful=True is not supported by the converter; expected "
            "stateful=False (rshop has its own stateful option: get_layer(stateful=True, ...))."
        )
    spec = cell_spec(keras, layer.cell, kind, where)
    if layer.activity_regularizer is not None:
        raise RshopConfigError(f"{where}: activity_regularizer is not supported; expected None.")
    options = {
        "return_sequences": bool(layer.return_sequences),
        "return_states": bool(layer.return_state),
        "go_backwards": bool(layer.go_backwards),
        "unroll": bool(layer.unroll),
        "zero_output_for_mask": bool(getattr(layer, "zero_output_for_mask", False)),
    }
    return spec, options


def _same_cell(a: CellSpec, b: CellSpec) -> bool:
    return {**vars(a), "weights": None} == {**vars(b), "weights": None}


def _convert_one(keras: ModuleType, layer: Any, where: str, name: str) -> RecurrentModel | Bidirectional:
    if isinstance(layer, keras.layers.Bidirectional):
        fwd, opts = _rnn_layer(keras, layer.forward_layer, where)
        bwd, bopts = _rnn_layer(keras, layer.backward_layer, where)
        if not _same_cell(fwd, bwd) or {**opts, "go_backwards": None} != {**bopts, "go_backwards": None}:
            raise RshopConfigError(
                f"{where}: a backward_layer configured unlike the forward layer is not supported; "
                "expected the same layer type and settings in both directions."
            )
        return build_bidirectional(fwd, bwd, layer.merge_mode, name, **opts)
    spec, opts = _rnn_layer(keras, layer, where)
    return build_model(spec, name, **opts)


def from_keras(layer: Any) -> Lowerable:
    """An rshop model computing what a Keras 3 recurrent layer (or stack) computes, weights copied.

    - ``SimpleRNN`` / ``GRU`` (either ``reset_after``) / ``LSTM``: a :class:`RecurrentModel` of
      the matching cell, with the layer's activations, bias, dropout rates, L1/L2 regularizers,
      ``MaxNorm`` / ``UnitNorm`` / ``NonNeg`` / ``MinMaxNorm`` constraints,
      ``return_sequences``, ``return_state`` (as ``return_states``), ``go_backwards``,
      ``zero_output_for_mask`` and ``unroll``;
    - ``Bidirectional``: a :class:`Bidirectional` with the same ``merge_mode`` (outputs, then the
      forward states, then the backward ones, as Keras returns them);
    - a ``keras.Sequential`` or list of those: a :class:`RecurrentSequential` when every layer is
      unidirectional, runs forwards and the stack returns no states; else a
      :class:`SequenceStack` of the converted layers.

    The layer must be built. Raises RshopConfigError naming what rshop cannot express:
    ``stateful``, other (custom) constraints, ``activity_regularizer``, other regularizers or activations,
    non-float32 dtype policies, a backward_layer unlike the forward one, other layer types.
    ``use_cudnn``, ``seed`` and ``unit_forget_bias`` (an initializer) do not matter once weights exist.
    """
    import keras

    where = f"from_keras({type(layer).__name__})"
    if isinstance(layer, (keras.Sequential, list, tuple)):
        items = list(layer.layers if isinstance(layer, keras.Sequential) else layer)
        return _from_stack(keras, items, where, getattr(layer, "name", "keras_stack"))
    return _convert_one(keras, layer, where, f"keras_{getattr(layer, 'name', 'layer')}")


def _from_stack(keras: ModuleType, items: list[Any], where: str, name: str) -> RecurrentSequential | SequenceStack:
    if not items:
        raise RshopConfigError(f"{where}: expected at least one recurrent layer, received none.")
    for i, item in enumerate(items[:-1]):
        if not getattr(item, "return_sequences", False) or getattr(item, "return_state", False):
            raise RshopConfigError(
                f"{where}: expected return_sequences=True and return_state=False on every layer "
                f"but the last, received layer {i} {getattr(item, 'name', item)!r} without."
            )
        if isinstance(item, keras.layers.Bidirectional) and item.merge_mode is None:
            raise RshopConfigError(f"{where}: merge_mode=None is only supported on the last layer of a stack.")
    plain = [
        _rnn_layer(keras, item, where) if not isinstance(item, keras.layers.Bidirectional) else None for item in items
    ]
    pairs = [p for p in plain if p is not None]
    if len(pairs) == len(plain) and all(not p[1]["go_backwards"] for p in pairs) and not pairs[-1][1]["return_states"]:
        return build_stack([p[0] for p in pairs], name, return_sequences=pairs[-1][1]["return_sequences"])
    return SequenceStack([_convert_one(keras, item, where, f"{name}_{i}") for i, item in enumerate(items)], name=name)


# -- back to Keras ---------------------------------------------------------------------------
def _keras_layer(keras: ModuleType, spec: CellSpec, options: dict[str, Any], name: str | None = None) -> Any:
    """A built Keras layer for ``spec`` with its weights, and the loop ``options`` (a dict)."""
    kw: dict[str, Any] = {
        "activation": spec.activation,
        "use_bias": spec.use_bias,
        "dropout": spec.dropout,
        "recurrent_dropout": spec.recurrent_dropout,
        "return_sequences": options["return_sequences"],
        "return_state": options["return_states"],
        "go_backwards": options["go_backwards"],
        "unroll": options["unroll"] is True,
        "zero_output_for_mask": options["zero_output_for_mask"],
    }
    regs = {"kernel": "kernel_regularizer", "recurrent": "recurrent_regularizer", "bias": "bias_regularizer"}
    for k, reg in spec.regularizers.items():
        kw[regs[k]] = keras.regularizers.L1L2(l1=reg["l1"], l2=reg["l2"])
    classes = {
        "max_norm": keras.constraints.MaxNorm,
        "unit_norm": keras.constraints.UnitNorm,
        "non_neg": keras.constraints.NonNeg,
        "min_max_norm": keras.constraints.MinMaxNorm,
    }
    for k, c in spec.constraints.items():
        kw[f"{k}_constraint"] = classes[c["name"]](**{o: v for o, v in c.items() if o != "name"})
    if spec.kind != "rnn":
        kw["recurrent_activation"] = spec.recurrent_activation
    if spec.kind == "gru":
        kw["reset_after"] = spec.reset_after
    cls = {"rnn": keras.layers.SimpleRNN, "gru": keras.layers.GRU, "lstm": keras.layers.LSTM}[spec.kind]
    layer = cls(spec.units, name=name, **kw)
    layer.build((None, None, spec.input_dim))
    _set(layer, spec)
    return layer


def _set(layer: Any, spec: CellSpec) -> None:
    w = spec.weights
    layer.set_weights([w["kernel"], w["recurrent_kernel"]] + ([w["bias"]] if spec.use_bias else []))


def _to_keras_one(keras: ModuleType, model: Lowerable, where: str) -> Any:
    if getattr(model, "KIND", None) == "Bidirectional":  # the model kind (rshop_core.lowerable)
        bi_model = cast("Bidirectional", model)  # what its KIND says it is
        check_plain_loop(bi_model.forward, where, allowed=("go_backwards", "zero_output_for_mask"))
        fwd, bwd = describe(bi_model.forward, where), describe(bi_model.backward, where)
        inner = _keras_layer(keras, fwd, bi_model.forward.options.to_json(), name=bi_model.forward.name)
        bi = keras.layers.Bidirectional(inner, merge_mode=bi_model.merge_mode, name=bi_model.name)
        bi.build((None, None, fwd.input_dim))
        _set(bi.forward_layer, fwd)
        _set(bi.backward_layer, bwd)
        return bi
    if isinstance(model, RecurrentSequential):
        raise RshopConfigError(f"{where}: expected a single-cell model here, received a RecurrentSequential.")
    if isinstance(model, RecurrentModel):
        check_plain_loop(model, where, allowed=("go_backwards", "zero_output_for_mask"))
        return _keras_layer(keras, describe(model, where), model.options.to_json(), name=model.name)
    raise RshopConfigError(
        f"{where}: expected a RecurrentModel, RecurrentSequential, Bidirectional or SequenceStack, "
        f"received {type(model).__name__}."
    )


def to_keras(model: Lowerable) -> Any:
    """The Keras 3 layer computing ``model``, weights set (the inverse of :func:`from_keras`).

    A RecurrentModel of one cell gives a ``SimpleRNN`` / ``GRU`` / ``LSTM``, a Bidirectional a
    ``keras.layers.Bidirectional``; a RecurrentSequential of cells or a SequenceStack gives a
    ``keras.Sequential`` (every layer but the last with ``return_sequences=True``), which needs
    ``return_states=False`` (a Sequential returns one tensor). ``unroll=k`` becomes ``unroll=False``
    (unrolling never changes results). Raises RshopConfigError for what Keras cannot express:
    teacher forcing, decode, readouts, constants, stateful, non-zero initial states, other steps.
    """
    import keras

    where = "to_keras"
    if isinstance(model, RecurrentSequential) or getattr(model, "KIND", None) == "SequenceStack":
        if isinstance(model, RecurrentSequential):
            check_plain_loop(model, where)
            specs = describe_stack(model, where)
            last = model.options.to_json()
            layers = [
                _keras_layer(
                    keras,
                    s,
                    {
                        **last,
                        "return_sequences": True if i < len(specs) - 1 else last["return_sequences"],
                        "return_states": False,
                    },
                )
                for i, s in enumerate(specs)
            ]
            states = model.options.return_states
        else:
            stack = cast(SequenceStack, model)  # what its KIND says it is
            layers = [_to_keras_one(keras, m, where) for m in stack.layers]
            states = any(m.options.return_states for m in stack.layers)
        if states:
            raise RshopConfigError(
                f"{where}: return_states=True is not supported for stacks (a keras.Sequential "
                "returns one tensor); expected a stack without it."
            )
        seq = keras.Sequential([keras.Input((None, model.input_shape[-1])), *layers], name=model.name)
        return seq
    return _to_keras_one(keras, model, where)
