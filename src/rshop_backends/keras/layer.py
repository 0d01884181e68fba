"""``RecurrentLayer``: an rshop model as a Keras 3 layer, on the active Keras backend.

    import keras
    from rshop_backends.keras import RecurrentLayer
    layer = RecurrentLayer(LSTMCell(16, input_dim=5).get_layer(return_sequences=True))
    model = keras.Sequential([keras.Input((None, 5)), keras.layers.Masking(), layer, keras.layers.Dense(1)])

How it works:

- **Weights.** ``build`` creates one Keras weight per rshop parameter (``model.param_specs``),
  initialised from ``model.get_weights()``, with the spec's ``trainable`` flag and its
  regularizer as a ``keras.regularizers.L1L2`` (so it lands in ``model.losses``) and its
  constraint as the ``keras.constraints`` object of the same name (so Keras' optimizers project the
  variable after each step, on every backend: ``Model.fit`` applies it). Keras forbids
  ``/`` in weight names, so a qualified name is escaped reversibly with ``-`` as the escape
  character: ``-`` becomes ``-_`` and ``/`` becomes ``--`` (``lstm_cell/kernel`` ->
  ``lstm_cell--kernel``); :func:`keras_weight_name` and :func:`rshop_weight_name` convert.
  ``layer.get_rshop_weights()`` / ``set_rshop_weights(d)`` read and write them by rshop name.
- **Calls.** The model is lowered once per Keras backend (``jax``, ``torch``, ``tensorflow``:
  the rshop engine of the same name) and run through the shared call path
  ``lowered._call(P, x, ...)`` with ``P`` = {qualified name: the Keras variable's value}, so the
  gradients Keras computes reach the Keras variables and Keras' optimizers train them. The
  lowered object's own copy of the parameters is never read.
- **Masks.** A Keras mask (``Masking``, ``Embedding(mask_zero=True)``, ``mask=``) is passed to
  rshop as ``mask=`` (bool (batch, T)): masked steps keep the states and hold the output (zeros
  with ``zero_output_for_mask=True``). ``compute_mask`` propagates the mask with
  ``return_sequences`` and drops it otherwise.
- **Dropout** (``Dropout`` layers in the step, cell ``dropout``/``recurrent_dropout``): on
  ``training=True`` calls the per-sequence masks are drawn with ``keras.random`` from the layer's
  ``SeedGenerator`` (so every jitted / traced training step draws new masks), not from rshop's
  numpy generator; inference is deterministic as everywhere.
- **Serialization.** ``get_config()`` is plain JSON: the rshop model's IR document
  (``rshop_core.serialization.to_document``); the class is registered as ``rshop>RecurrentLayer``,
  so ``.keras`` files load with ``keras.saving.load_model(path, safe_mode=True)``.

Not supported: ``stateful=True`` models (carry states with ``initial_state=`` and
``return_states=True``), float64 (Keras computes in float32 here), random (non-learned) state
initializers (refused at construction on every Keras backend: rshop draws them with numpy per
call, which a traced Keras step cannot do alike everywhere), mixed precision.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import keras
import numpy as np

from rshop_core.errors import RshopConfigError, RshopDTypeError
from rshop_core.weights import check_weights

if TYPE_CHECKING:
    from rshop_backends.lowered import Lowered
    from rshop_core.lowerable import Lowerable

__all__ = ["RecurrentLayer", "keras_weight_name", "rshop_weight_name", "ENGINES"]

# Keras backend name -> rshop engine name
ENGINES = {"jax": "jax", "torch": "torch", "tensorflow": "tensorflow"}


def keras_weight_name(qualified: str) -> str:
    """The Keras weight name of an rshop parameter: ``-`` -> ``-_``, then ``/`` -> ``--``."""
    return qualified.replace("-", "-_").replace("/", "--")


def rshop_weight_name(name: str) -> str:
    """The inverse of :func:`keras_weight_name`: ``--`` -> ``/``, ``-_`` -> ``-``."""
    out, i = [], 0
    while i < len(name):
        c = name[i]
        if c == "-":
            nxt = name[i + 1 : i + 2]
            if nxt not in ("-", "_"):
                raise RshopConfigError(
                    f"rshop_weight_name: expected a name made by keras_weight_name, received "
                    f"{name!r} ('-' not followed by '-' or '_' at position {i})."
                )
            out.append("/" if nxt == "-" else "-")
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


class _Constant:
    """A Keras initializer returning one fixed array (the rshop model's current weight)."""

    def __init__(self, value: Any) -> None:
        self.value = np.asarray(value)

    def __call__(self, shape: tuple[int, ...], dtype: str | None = None) -> np.ndarray:
        return self.value.astype(dtype or self.value.dtype).reshape(shape)


class _Runtime:
    """Per-layer state Keras must not track: the lowered objects and the variables by rshop name."""

    def __init__(self) -> None:
        self.lowered: dict[tuple[str, ...], Lowered] = {}  # (rshop engine[, torch device]) -> lowered object
        self.variables: dict[str, Any] = {}  # qualified name -> Keras variable, in param_specs order
        self.batch: Any = None  # the current call's (possibly dynamic) batch size, for dropout masks


def _load_document(doc: dict[str, Any]) -> Lowerable:
    from rshop_core import serialization

    return serialization.from_document(doc)


def _to_document(model: Lowerable) -> dict[str, Any]:
    from rshop_core import serialization

    return serialization.to_document(model)


def _eager(engine: str) -> contextlib.AbstractContextManager[Any]:
    """TensorFlow: build outside any Keras ``tf.function`` trace (variables and literals must not belong
    to one trace's graph: the compiled steps are cached on the rshop model and reused by later traces)."""
    if engine != "tensorflow":
        return contextlib.nullcontext()
    import tensorflow as tf

    return tf.init_scope()


def _refuse_random_states(model: Lowerable) -> None:
    """Refuse random (non-learned) state initializers on every Keras backend, at construction.

    rshop draws them with numpy for the call's batch; inside Keras' traced steps the batch is
    symbolic on tensorflow (the draw cannot happen) and the draw would be frozen into the trace on
    jax, so one backend failing in ``fit`` and two silently constant would disagree."""
    from rshop_core.initializers import Learned

    for leaf in model.leaves:
        for spec in leaf.state_specs:
            init = spec.initializer
            if init.random and not isinstance(init, Learned):
                raise RshopConfigError(
                    f"RecurrentLayer: expected state initializers that are constant or learned, received the "
                    f"random {init!r} for state {spec.name!r} of {leaf.name!r}. Keras traces its steps, where "
                    "rshop cannot draw a per-call random state the same way on every backend: use "
                    "initializers.Learned(...) for a trained initial state, or pass initial_state= drawn with "
                    "keras.random (and a keras.random.SeedGenerator) in your own call."
                )


def keras_constraint(spec: dict[str, Any] | None) -> keras.constraints.Constraint | None:
    """The ``keras.constraints`` object computing what the rshop constraint ``spec`` (JSON form) computes."""
    if spec is None:
        return None
    classes = {
        "max_norm": keras.constraints.MaxNorm,
        "unit_norm": keras.constraints.UnitNorm,
        "non_neg": keras.constraints.NonNeg,
        "min_max_norm": keras.constraints.MinMaxNorm,
    }
    return classes[spec["name"]](**{k: v for k, v in spec.items() if k != "name"})


@keras.saving.register_keras_serializable(package="rshop")
class RecurrentLayer(keras.layers.Layer):
    """An rshop ``RecurrentModel`` / ``RecurrentSequential`` / ``Bidirectional`` as a Keras layer.

    Args:
        model: the rshop model, or its IR document (a dict, as in :meth:`get_config`).
        **kwargs: ``keras.layers.Layer`` arguments (``name``, ``trainable``, ...).

    ``call(inputs, mask=None, training=None, initial_state=None, constants=None,
    sequence_lengths=None, ground_truth=None, initial_readout=None, output_length=None)``:
    ``inputs`` (batch, T, *input_shape) (or (batch, *input_shape) with ``decode``); returns what
    the rshop model returns (the output, or a tuple: outputs, then the final states with
    ``return_states``). ``training`` is Keras' flag: ``ground_truth`` teacher-forces in ``fit``
    and is not read by ``predict`` / ``evaluate`` (a Keras functional model is one graph for both,
    so its ground-truth input is always wired; the engines' own layers refuse it at inference).
    """

    def __init__(self, model: Lowerable | dict[str, Any], **kwargs: Any) -> None:
        if isinstance(model, dict):
            model = _load_document(model)
        if not hasattr(model, "param_specs") or not hasattr(model, "lower"):
            raise RshopConfigError(
                f"RecurrentLayer: expected an rshop RecurrentModel, RecurrentSequential or "
                f"Bidirectional, received {model!r}."
            )
        if model.options.stateful:
            raise RshopConfigError(
                f"RecurrentLayer: expected a model with stateful=False, received {getattr(model, 'name', model)!r} "
                "with stateful=True. Carry states yourself: return_states=True and initial_state=."
            )
        _refuse_random_states(model)
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if self.compute_dtype != "float32" or self.variable_dtype != "float32":
            raise RshopDTypeError(
                f"RecurrentLayer {self.name!r}: expected the dtype policy float32, received "
                f"{self.dtype_policy.name!r}. Mixed precision and float64 are not supported."
            )
        self._rshop_model = model
        self._rt = _Runtime()
        self.supports_masking = True
        self.seed_generator = keras.random.SeedGenerator(int(model.seed) % (2**31))

    # -- facts -------------------------------------------------------------------------
    @property
    def rshop_model(self) -> Lowerable:
        """The wrapped rshop model (its weights are the initial ones until :meth:`sync_to_model`)."""
        return self._rshop_model

    @property
    def rshop_variables(self) -> dict[str, Any]:
        """Qualified rshop name -> Keras variable (empty before ``build``)."""
        return dict(self._rt.variables)

    # -- weights -----------------------------------------------------------------------
    def build(self, input_shape: tuple[Any, ...] | None = None) -> None:
        """Create the Keras variables from the model's current weights (building a model made without input_dim)."""
        m: Any = self._rshop_model  # a kind made without input_dim (a stack, a cell model) has build()
        if getattr(m, "built", True) is False:  # a stack or cell model made without input_dim
            if input_shape is None or input_shape[-1] is None:
                raise RshopConfigError(
                    f"RecurrentLayer {self.name!r}: expected an input with a known last axis to "
                    f"build {m!r}, received shape {input_shape}."
                )
            m.build(int(input_shape[-1]))
        if m.dtype != "float32":
            raise RshopDTypeError(f"RecurrentLayer {self.name!r}: expected a float32 rshop model, received {m.dtype}.")
        weights = m.get_weights()
        for q, spec in m.param_specs.items():
            reg = spec.regularizer
            self._rt.variables[q] = self.add_weight(
                shape=spec.shape,
                name=keras_weight_name(q),
                initializer=_Constant(weights[q]),
                dtype=spec.dtype,
                trainable=spec.trainable,
                regularizer=keras.regularizers.L1L2(l1=reg["l1"], l2=reg["l2"]) if reg else None,
                constraint=keras_constraint(spec.constraint),
            )
        self.built = True

    def get_rshop_weights(self) -> dict[str, np.ndarray]:
        """The current weights as numpy arrays keyed by qualified rshop name."""
        if not self._rt.variables:
            return self._rshop_model.get_weights()
        return {q: np.array(keras.ops.convert_to_numpy(v)) for q, v in self._rt.variables.items()}

    def set_rshop_weights(self, weights: dict[str, np.ndarray]) -> None:
        """Assign every weight from numpy arrays keyed by qualified rshop name (checked exactly)."""
        weights = check_weights(f"RecurrentLayer {self.name!r}", self._rshop_model.param_specs, weights)
        if not self._rt.variables:
            self._rshop_model.set_weights(weights)
            return
        for q, v in self._rt.variables.items():
            v.assign(weights[q])

    def sync_to_model(self) -> Lowerable:
        """Copy the Keras weights into the wrapped rshop model (e.g. to lower it elsewhere); returns it."""
        if self._rt.variables:
            self._rshop_model.set_weights(self.get_rshop_weights())
        return self._rshop_model

    # -- running -----------------------------------------------------------------------
    def _lowered(self, inputs: Any) -> Lowered:
        backend = keras.backend.backend()
        engine = ENGINES.get(backend)
        if engine is None:
            raise RshopConfigError(
                f"RecurrentLayer {self.name!r}: expected the Keras backend to be one of "
                f"{sorted(ENGINES)}, received {backend!r}."
            )
        # torch: one object per device (Keras' torch backend also traces shapes on the "meta" device)
        key = (engine, str(inputs.device)) if engine == "torch" else (engine,)
        obj = self._rt.lowered.get(key)
        if obj is None:
            from rshop_backends import lower

            # keras.random masks, fresh in every traced step; code generated eagerly on tensorflow
            hooks: dict[str, Any] = {"dropout_masks": self._draw_dropout}
            if engine == "tensorflow":
                hooks["codegen_context"] = lambda: _eager("tensorflow")
            with _eager(engine):
                obj = lower(self._rshop_model, engine, "float32", **hooks)
            if engine == "torch" and obj._anchor.device != inputs.device:
                obj.to(inputs.device)  # literals and zero states on the inputs' device
            self._rt.lowered[key] = obj
        return obj

    def _draw_dropout(self, shape: tuple[int, ...], rate: float, batch: int | None, key: Any, index: int) -> Any:
        """A dropout mask (batch, *shape) / (1 - rate) drawn with keras.random (hook of the lowered object)."""
        n = batch if batch is not None else self._rt.batch
        keep = keras.random.uniform((n,) + tuple(shape), dtype="float32", seed=self.seed_generator) >= rate
        return keras.ops.cast(keep, "float32") / (1.0 - rate)

    def call(
        self,
        inputs: Any,
        mask: Any = None,
        training: bool | None = None,
        initial_state: Any = None,
        constants: Any = None,
        sequence_lengths: Any = None,
        ground_truth: Any = None,
        initial_readout: Any = None,
        output_length: int | None = None,
    ) -> Any:
        """Run the wrapped model on the Keras backend's engine (see the class docstring)."""
        lowered = self._lowered(inputs)
        P = {q: v.value for q, v in self._rt.variables.items()}
        as_list: Callable[[Any], list[Any] | None] = lambda v: (
            None
            if v is None
            else [keras.ops.convert_to_tensor(a) for a in (v if isinstance(v, (list, tuple)) else [v])]
        )
        opt: Callable[[Any], Any] = lambda v: None if v is None else keras.ops.convert_to_tensor(v)
        if mask is not None:
            mask = None if self._rshop_model.options.decode else keras.ops.cast(mask, "bool")
        if sequence_lengths is not None:
            mask = None  # explicit lengths win over an upstream Keras mask
        self._rt.batch = keras.ops.shape(inputs)[0]
        if not training:  # one Keras graph serves fit and predict: targets wired in are for fit only
            ground_truth = None
        return lowered._call(
            P,
            inputs,
            as_list(initial_state),
            as_list(constants),
            mask=mask,
            sequence_lengths=opt(sequence_lengths),
            ground_truth=opt(ground_truth),
            initial_readout=opt(initial_readout),
            training=bool(training),
            output_length=output_length,
        )

    # -- shapes and masks ----------------------------------------------------------------
    def _shapes(
        self, input_shape: tuple[Any, ...], output_length: int | None = None
    ) -> tuple[list[tuple[Any, ...]], int]:
        """The shapes of the outputs then the returned states (Keras shapes: None for unknown dims) and
        the number of outputs."""
        m: Any = self._rshop_model  # a kind made without input_dim (a stack, a cell model) has build()
        if getattr(m, "built", True) is False:
            m.build(int(input_shape[-1]))
        o = m.options
        outs = [tuple(s) for s in m.output_shapes()]
        batch = input_shape[0]
        if o.return_sequences:
            steps = (output_length or o.output_length) if o.decode else input_shape[1]
            outs = [(batch, steps) + s for s in outs]
        else:
            outs = [(batch,) + s for s in outs]
        states = [(batch,) + tuple(s.shape) for s in m.returned_state_specs]
        return outs + states, len(outs)

    def compute_output_shape(self, input_shape: Any, *args: Any, **kwargs: Any) -> Any:
        """The shapes of what :meth:`call` returns (one tuple, or a tuple of them)."""
        shapes, _ = self._shapes(tuple(input_shape), kwargs.get("output_length"))
        return shapes[0] if len(shapes) == 1 else tuple(shapes)

    def compute_output_spec(
        self,
        inputs: Any,
        mask: Any = None,
        training: bool | None = None,
        initial_state: Any = None,
        constants: Any = None,
        sequence_lengths: Any = None,
        ground_truth: Any = None,
        initial_readout: Any = None,
        output_length: int | None = None,
    ) -> Any:
        """``keras.KerasTensor`` specs of what :meth:`call` returns."""
        shapes, _ = self._shapes(tuple(inputs.shape), output_length)
        specs = [keras.KerasTensor(s, dtype=self.compute_dtype) for s in shapes]
        return specs[0] if len(specs) == 1 else tuple(specs)

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        """The mask of each returned output (the input mask with ``return_sequences``; None for states)."""
        m = self._rshop_model
        out_mask = mask if (m.options.return_sequences and not m.options.decode) else None
        shapes, n_out = self._shapes(tuple(inputs.shape))
        if len(shapes) == 1:
            return out_mask
        return [out_mask] * n_out + [None] * (len(shapes) - n_out)

    # -- serialization -------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        """Keras' config, with the model's IR document (and current weights) under ``"model"``."""
        config = super().get_config()
        config["model"] = _to_document(self.sync_to_model())
        return config
