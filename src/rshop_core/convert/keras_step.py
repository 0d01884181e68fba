"""``from_keras_step``: a Keras functional model of ONE time step -> an rshop ``RecurrentModel``.

RecurrentShop's way of writing a cell, with Keras layers::

    x_t, h_tm1 = keras.Input((5,)), keras.Input((10,))
    h_t = keras.layers.Activation("tanh")(keras.layers.Add()([keras.layers.Dense(10)(x_t),
                                                            keras.layers.Dense(10, use_bias=False)(h_tm1)]))
    step = keras.Model([x_t, h_tm1], h_t)
    rnn = from_keras_step(step, initial_states=[h_tm1], final_states=[h_t], return_sequences=True)

The Keras graph is walked from the requested tensors back to the step model's inputs (through each
tensor's producing node) and rebuilt with rshop layers and :mod:`rshop_core.functional` ops; the Keras
weights are then copied into the rshop model. A Keras layer used twice stays one rshop layer (shared
weights). Only layers and ops with an exact rshop equivalent are accepted (see :data:`SUPPORTED`; indexing,
shape ops, ``einsum`` / ``matmul``, reductions, ``Dot`` and Keras cells are translated in :mod:`.keras_step_ops`);
anything else — ``Lambda`` included, on purpose: it would run arbitrary code — raises
:class:`~rshop_core.errors.RshopConfigError` naming the layer's class and name.

Which inputs are what: ``initial_states``, ``readout_input`` and ``constants`` name Keras Inputs of the
step model; the one remaining input is the per-step input ``x_t``. The step's output is ``output=``
if given, else the first of ``step_model.outputs`` that is not a final state, else the first output.

keras is imported only inside these functions: importing :mod:`rshop_core` (or this module) never
imports it. ``rshop_backends.keras`` re-exports :func:`from_keras_step` beside its Keras layer.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar, cast

import numpy as np

from .. import activations as _activations
from .. import constraints as _constraints
from .. import functional as F
from ..errors import RshopConfigError
from ..functional import BinaryOp, UnaryOp
from ..layers import Activation, Dense, Dropout
from ..layers.base import Layer
from ..model import RecurrentModel
from ..symbolic import Input, Tensor
from . import keras_step_ops, keras_step_values

__all__ = ["from_keras_step", "SUPPORTED"]

LayerT = TypeVar("LayerT", bound=Layer)

# Keras layers (by class name; the exact classes are checked) and keras.ops operations that map exactly
SUPPORTED_LAYERS = (
    "InputLayer",
    "Dense",
    "Activation",
    "Add",
    "Subtract",
    "Multiply",
    "Average",
    "Maximum",
    "Minimum",
    "Concatenate",
    "Dropout",
    "Identity",
    "ReLU",
    "Softmax",
    "Reshape",
    "Dot",
    *keras_step_ops.CELLS,
    *keras_step_values.LAYERS,
)
_BINARY_OPS: dict[str, BinaryOp] = {
    "Add": F.add,
    "Subtract": F.subtract,
    "Multiply": F.multiply,
    "Divide": F.divide,
    "TrueDivide": F.divide,
    "Maximum": F.maximum,
    "Minimum": F.minimum,
}
_UNARY_OPS: dict[str, UnaryOp] = {
    "Tanh": F.tanh,
    "Sigmoid": F.sigmoid,
    "Relu": F.relu,
    "Exp": F.exp,
    "Log": F.log,
    "Sqrt": F.sqrt,
    "Square": F.square,
    "Absolute": F.abs,
    "Abs": F.abs,
    "Negative": F.negative,
    "Softplus": F.softplus,
    "Softsign": F.softsign,
    "HardSigmoid": F.hard_sigmoid,
    "Sin": F.sin,
    "Cos": F.cos,
    "Erf": F.erf,
    "Silu": F.silu,
    "Selu": F.selu,
    "Relu6": F.relu6,
    "HardSilu": F.hard_silu,
}
_ATTR_OPS = ("Gelu", "LeakyRelu", "LogSoftmax", "Power")  # keras.ops with a setting or two tensors: see _op
SUPPORTED = SUPPORTED_LAYERS + tuple(
    f"keras.ops.{k}"
    for k in (*_BINARY_OPS, *_UNARY_OPS, "Softmax", *_ATTR_OPS, *keras_step_ops.OPS, *keras_step_values.OPS)
)


def _name(s: str) -> str:
    """A Keras name as an rshop layer/Input name (letters, digits, '_', '-')."""
    return re.sub(r"[^A-Za-z0-9_\-]", "_", s) or "layer"


def _is_layer(op: Any, cls_name: str) -> bool:
    import keras

    cls = getattr(keras.layers, cls_name, None)
    return cls is not None and type(op) is cls


def _unsupported(op: Any, why: str | None = None) -> NoReturn:
    import keras

    kind = type(op).__name__
    what = f"{'layer' if isinstance(op, keras.layers.Layer) else 'op'} {kind} {getattr(op, 'name', '?')!r}"
    nearest = keras_step_ops.nearest_form(kind) if why is None else None
    raise RshopConfigError(
        f"from_keras_step, {what}: expected a supported layer ({', '.join(SUPPORTED_LAYERS[1:])}) or "
        f"keras.ops call ({', '.join(s[10:] for s in SUPPORTED[len(SUPPORTED_LAYERS) :])}), received "
        f"{type(op).__module__}.{kind}{' (' + why + ')' if why else ''}. "
        + (f"Nearest supported form: {nearest}. " if nearest else "")
        + "Lambda and custom layers are never imported; write that part of the step with the supported forms "
        "(docs/converting.md), rshop layers or rshop_core.functional."
    )


def _regularizer(op: Any, which: str) -> dict[str, float] | None:
    r = getattr(op, which, None)
    if r is None:
        return None
    cfg = r.get_config() if hasattr(r, "get_config") else {}
    if type(r).__name__ not in ("L1", "L2", "L1L2") or not set(cfg) <= {"l1", "l2"}:
        _unsupported(op, f"{which} {type(r).__name__}")
    return {"l1": float(cfg.get("l1", 0.0)), "l2": float(cfg.get("l2", 0.0))}


def _constraint(op: Any, which: str) -> dict[str, Any] | None:
    """A keras MaxNorm / UnitNorm / NonNeg / MinMaxNorm as rshop's; any other constraint is unsupported."""
    c = getattr(op, which, None)
    try:
        return _constraints.get(c, which)
    except RshopConfigError:
        _unsupported(op, f"{which} {type(c).__name__} (rshop has max_norm, unit_norm, non_neg, min_max_norm)")


def _activation_name(op: Any, fn: Any) -> str:
    import keras

    name = keras.activations.serialize(fn) if fn is not None else "linear"
    if isinstance(name, dict):  # a registered object: take its name if it is a plain activation
        name = name.get("config", name.get("class_name"))
    if not isinstance(name, str) or name not in _activations.names():
        _unsupported(op, f"activation {name!r}; rshop's are {', '.join(_activations.names())}")
    return name


class _Importer:
    def __init__(self, inputs: dict[int, Tensor]) -> None:
        self.inputs = inputs  # id(InputLayer op) -> rshop Input
        self.memo: dict[tuple[int, int, int], Tensor] = {}  # (id(op), node index, tensor index) -> rshop Tensor
        self.layers: dict[int, tuple[Any, Layer]] = {}  # id(Keras layer) -> (Keras layer, its rshop layer)

    def rshop_layer(self, op: Any, make: Callable[[], LayerT]) -> LayerT:
        """The one rshop layer standing for Keras layer ``op`` (shared across its calls)."""
        entry = self.layers.get(id(op))
        if entry is None:
            entry = self.layers[id(op)] = (op, make())
        return cast(LayerT, entry[1])  # what ``make`` built for this Keras layer

    def convert(self, kt: Any) -> Tensor:
        history = getattr(kt, "_keras_history", None)
        if history is None:
            raise RshopConfigError(f"from_keras_step: expected Keras tensors of the step model, received {kt!r}.")
        op, node_index, tensor_index = history
        key = (id(op), node_index, tensor_index)
        if key in self.memo:
            return self.memo[key]
        if _is_layer(op, "InputLayer"):
            if id(op) not in self.inputs:
                raise RshopConfigError(
                    f"from_keras_step: the step reads the Keras Input {op.name!r}, which is not "
                    "an input of the step model."
                )
            out = self.inputs[id(op)]
        else:
            node = op._inbound_nodes[node_index]
            args = [self._deep(a) for a in node.arguments.args]
            kwargs = {k: self._deep(v) for k, v in node.arguments.kwargs.items()}
            outs = self.apply(op, args, kwargs)
            if not isinstance(outs, (list, tuple)):
                outs = [outs]
            for i, o in enumerate(outs):  # every output of the call at once: a node is translated once
                self.memo[key[:2] + (i,)] = o
            out = outs[tensor_index]
        self.memo[key] = out
        return out

    def _deep(self, a: Any) -> Any:
        """``a`` with every Keras tensor in it (through lists and tuples) made an rshop Tensor."""
        import keras

        if isinstance(a, keras.KerasTensor):
            return self.convert(a)
        if isinstance(a, (list, tuple)):
            return type(a)(self._deep(v) for v in a)
        return a

    def _listed(self, op: Any, args: list[Any]) -> list[Any]:
        import keras

        if len(args) == 1 and isinstance(args[0], (list, tuple)):
            return [self.convert(a) if isinstance(a, keras.KerasTensor) else a for a in args[0]]
        return list(args)

    def apply(self, op: Any, args: list[Any], kwargs: dict[str, Any]) -> Tensor | list[Tensor]:  # a branch per kind
        import keras

        kind = type(op).__name__
        if isinstance(op, keras.layers.Layer) and kind in SUPPORTED_LAYERS and _is_layer(op, kind):
            if kind in keras_step_ops.CELLS:
                return keras_step_ops.translate_cell(self, _unsupported, op, kind, args, kwargs)
            if kwargs and set(kwargs) - {"training", "mask"}:
                _unsupported(op, f"call keywords {sorted(kwargs)}")
            if any(isinstance(v, Tensor) for v in keras.tree.flatten(kwargs)):
                _unsupported(op, "Keras tensors given as keyword arguments")
            return self._layer(op, kind, args)
        if type(op).__module__.startswith("keras.src.ops.") and not isinstance(op, keras.layers.Layer):
            if kind in keras_step_ops.OPS:
                if kwargs:
                    _unsupported(op, f"keywords {sorted(kwargs)}")
                return keras_step_ops.translate_op(_unsupported, op, kind, args)
            if kind in keras_step_values.OPS:
                if kwargs:
                    _unsupported(op, f"keywords {sorted(kwargs)}")
                return keras_step_values.translate_op(_unsupported, op, kind, args)
            return self._op(op, kind, args, kwargs)
        _unsupported(op)

    def _layer(self, op: Any, kind: str, args: list[Any]) -> Tensor:
        nm = _name(op.name)
        if kind == "Dense":
            if getattr(op, "activity_regularizer", None) is not None:
                _unsupported(op, "activity_regularizer is set")
            if getattr(op, "lora_enabled", False) or getattr(op, "quantization_mode", None):
                _unsupported(op, "LoRA or quantized Dense")
            layer = self.rshop_layer(
                op,
                lambda: Dense(
                    op.units,
                    activation=_activation_name(op, op.activation),
                    use_bias=op.use_bias,
                    kernel_regularizer=_regularizer(op, "kernel_regularizer"),
                    bias_regularizer=_regularizer(op, "bias_regularizer"),
                    kernel_constraint=_constraint(op, "kernel_constraint"),
                    bias_constraint=_constraint(op, "bias_constraint"),
                    name=nm,
                ),
            )
            return layer(args[0])
        if kind == "Activation":
            return Activation(_activation_name(op, op.activation), name=nm)(args[0])
        if kind == "Dropout":
            if getattr(op, "noise_shape", None) is not None:
                _unsupported(op, "noise_shape is set")
            return Dropout(float(op.rate), name=nm)(args[0])
        if kind == "Identity":
            return args[0]
        if kind in ("ReLU", *keras_step_values.LAYERS):
            return keras_step_values.translate_layer(_unsupported, op, kind, args[0])
        if kind == "Softmax":
            return F.softmax(args[0], axis=self._axis(op, op.axis, args[0]))
        if kind == "Reshape":
            return F.reshape(args[0], [int(d) for d in op.target_shape])
        xs = self._listed(op, args)
        if kind == "Dot":
            if len(xs) != 2:
                _unsupported(op, f"{len(xs)} inputs (expected 2)")
            return keras_step_ops.dot_layer(_unsupported, op, xs[0], xs[1])
        if kind == "Concatenate":
            return F.concat(xs, axis=self._axis(op, op.axis, xs[0]))
        merge = {
            "Add": F.add,
            "Subtract": F.subtract,
            "Multiply": F.multiply,
            "Maximum": F.maximum,
            "Minimum": F.minimum,
            "Average": F.add,
        }[kind]
        out = xs[0]
        for x in xs[1:]:
            out = merge(out, x)
        return F.divide(out, float(len(xs))) if kind == "Average" else out

    @staticmethod
    def _axis(op: Any, axis: object, like: Tensor) -> int:
        """A Keras axis (counting the batch) as an rshop per-example negative axis."""
        if not isinstance(axis, int):
            _unsupported(op, f"axis {axis!r}")
        if axis >= 0:
            if axis == 0:
                _unsupported(op, "axis 0 is the batch")
            axis = axis - (len(like.shape) + 1)
        return axis

    def _op(self, op: Any, kind: str, args: list[Any], kwargs: dict[str, Any]) -> Tensor:
        def value(a: Any) -> Any:  # a number (its partner gives it a dtype) or an rshop Tensor
            if isinstance(a, int) and not isinstance(a, bool):
                return a
            if isinstance(a, float):
                return a
            if hasattr(a, "type") and hasattr(a, "op"):  # an rshop Tensor
                return a
            _unsupported(op, f"argument {a!r}")

        if kwargs:
            _unsupported(op, f"keywords {sorted(kwargs)}")
        if kind in _BINARY_OPS and len(args) == 2:
            return _BINARY_OPS[kind](value(args[0]), value(args[1]))
        if kind in _UNARY_OPS and len(args) == 1:
            return _UNARY_OPS[kind](value(args[0]))
        if kind == "Gelu" and len(args) == 1:
            return F.gelu(value(args[0]), approximate=bool(op.approximate))
        if kind == "LeakyRelu" and len(args) == 1:
            return F.leaky_relu(value(args[0]), negative_slope=float(op.negative_slope))
        if kind == "LogSoftmax" and len(args) == 1:
            return F.log_softmax(value(args[0]), axis=self._axis(op, getattr(op, "axis", -1), args[0]))
        if kind == "Power" and len(args) == 2:
            return F.pow(value(args[0]), value(args[1]))
        if kind == "Softmax" and len(args) == 1:
            return F.softmax(value(args[0]), axis=self._axis(op, getattr(op, "axis", -1), args[0]))
        _unsupported(op)


def _as_list(v: Any, what: str) -> list[Any]:
    import keras

    if v is None:
        return []
    if isinstance(v, (list, tuple)):
        return list(v)
    if isinstance(v, keras.KerasTensor):
        return [v]
    raise RshopConfigError(f"from_keras_step, {what}: expected Keras tensors of the step model, received {v!r}.")


def from_keras_step(
    step_model: Any,
    initial_states: Any,
    final_states: Any,
    readout_input: Any = None,
    constants: Any = None,
    output: Any = None,
    **options: Any,
) -> RecurrentModel:
    """An rshop ``RecurrentModel`` from a Keras functional model of one time step.

    Args:
        step_model: a ``keras.Model`` built with the functional API from ``keras.Input`` s.
        initial_states: the Keras Inputs holding the states at t-1.
        final_states: the Keras tensors of the states at t (same order, shapes).
        readout_input: a Keras Input shaped like the output: the output of step t-1.
        constants: Keras Inputs seen unchanged at every step.
        output: the step's output tensor(s); default: the first output of ``step_model`` that is not
            a final state, else its first output.
        **options: ``RecurrentModel`` options (``return_sequences``, ``name``, ``seed``, ...).

    Returns a built ``RecurrentModel`` whose weights are the Keras layers' current weights.
    """
    import keras

    if (
        not isinstance(step_model, keras.Model)
        or not hasattr(step_model, "_inbound_nodes")
        or not getattr(step_model, "inputs", None)
    ):
        raise RshopConfigError(
            f"from_keras_step: expected a Keras functional model of one step, received {type(step_model).__name__}."
        )
    states_k = _as_list(initial_states, "initial_states")
    finals_k = _as_list(final_states, "final_states")
    consts_k = _as_list(constants, "constants")
    readout_k = _as_list(readout_input, "readout_input")

    def input_op(kt: Any, what: str) -> Any:
        op = getattr(kt, "_keras_history", (None,))[0]
        if not _is_layer(op, "InputLayer"):
            raise RshopConfigError(
                f"from_keras_step, {what}: expected a keras.Input of the step model, received {kt!r}."
            )
        return op

    model_inputs = keras.tree.flatten(step_model.inputs)
    role: dict[int, str] = {}
    for what, group in (("initial_states", states_k), ("readout_input", readout_k), ("constants", consts_k)):
        for i, kt in enumerate(group):
            role[id(input_op(kt, f"{what} #{i}"))] = what
    free = [kt for kt in model_inputs if id(input_op(kt, "input")) not in role]
    if len(free) != 1:
        raise RshopConfigError(
            f"from_keras_step: expected exactly one step-model input that is neither a state, the readout nor a "
            f"constant (the input x_t), received {len(free)}: {[kt.name for kt in free]}."
        )
    inputs: dict[int, Tensor] = {}
    rs: dict[int, Tensor] = {}
    for kt in free + states_k + readout_k + consts_k:
        const = any(kt is k for k in consts_k)
        allowed = keras_step_values.DTYPES if const else ("float32",)
        if kt.dtype not in allowed:
            why = {
                True: "Declare it keras.Input(shape, dtype=...) with one of those.",
                False: "States and readouts are float32; declare them so.",
            }[const]
            if kt is free[0]:
                why = (
                    "The per-step input is floating; pass int32 or bool values as constants=, or feed ids as "
                    "floats and keras.ops.cast(x, 'int32') them in the step."
                )
            raise RshopConfigError(
                f"from_keras_step, Input {kt.name!r}: expected dtype {' or '.join(allowed)}, received {kt.dtype}. "
                + why
            )
        op = input_op(kt, "input")
        rs[id(kt)] = inputs[id(op)] = Input(tuple(kt.shape[1:]), str(kt.dtype), name=_name(op.name))
    if output is None:
        outs = keras.tree.flatten(step_model.outputs)
        rest = [o for o in outs if not any(o is f for f in finals_k)]
        output = rest[:1] or outs[:1]
    imp = _Importer(inputs)
    out_r = [imp.convert(t) for t in _as_list(output, "output")]
    finals_r = [imp.convert(t) for t in finals_k]
    model = RecurrentModel(
        input=rs[id(free[0])],
        output=out_r if len(out_r) > 1 else out_r[0],
        initial_states=[rs[id(k)] for k in states_k],
        final_states=finals_r,
        constants=[rs[id(k)] for k in consts_k],
        readout_input=rs[id(readout_k[0])] if readout_k else None,
        **options,
    )
    # the Keras weights, matched through the layer that owns each parameter
    by_rshop = {id(r): k for k, r in imp.layers.values() if r is not None}
    weights = model.get_weights()
    for qual, (owner, local) in model._require_built().meta.get("param_owners", {}).items():
        k = by_rshop.get(id(owner))
        if k is not None:
            weights[qual] = np.asarray(keras.ops.convert_to_numpy(getattr(k, local)), dtype="float32")
    model.set_weights(weights)
    return model
