"""The tensorflow engine's layer object: a ``tf.Module`` holding ``tf.Variable`` s.

``layer(x, initial_state=None, constants=None)`` takes ``tf.Tensor`` / ``tf.Variable``
arguments, x of shape (batch, T, *input_shape). The engine-neutral checks of
:class:`~rshop_backends.lowered.Lowered` run eagerly on every call (before any tracing,
so errors read as on every engine), then a ``tf.function`` (``reduce_retracing``) runs
the loop of :mod:`.loop`: at most two traces whatever the batch sizes and sequence
lengths, except ``unroll=True`` (which needs a static T): one function per T.
"""

from __future__ import annotations

import functools
import re

import tensorflow as tf

from rshop_backends.lowered import Lowered
from rshop_backends.tensorflow import loop
from rshop_core.errors import RshopShapeError

try:  # the one private TF API used: tells whether a gradient tape is active
    from tensorflow.python.eager import record as _record
except ImportError:  # pragma: no cover - a future TF without it: never choose XLA under tapes
    _record = None

# XLA for the loop when no gradient tape records. Off by default: on CPU it is faster for
# inference at a fixed shape, but compiles again for every new (batch, T) and never
# applies to training (see _function).
JIT_COMPILE = False


def _identifier(name: str) -> str:
    """A valid ``tf.Module`` name made from a model name."""
    out = re.sub(r"\W", "_", name) or "recurrent_model"
    return "_" + out if out[0].isdigit() else out


class TensorFlowLayer(tf.Module, Lowered):
    """A lowered :class:`~rshop_core.RecurrentModel` as a ``tf.Module``.

    Parameters are ``tf.Variable`` s of the lowering's dtype (``trainable`` as in their
    ``ParamSpec``), in ``variables_by_name`` (qualified name -> variable), so
    ``layer.trainable_variables`` and ``tf.GradientTape`` work. ``jit_compile`` turns XLA
    on for the loop (default :data:`JIT_COMPILE`).
    """

    engine = "tensorflow"
    _native = (tf.Tensor, tf.Variable)
    _native_names = "tf.Tensor or tf.Variable"

    def __init__(self, model, dtype, engine_module, jit_compile=None):
        super().__init__(name=_identifier(model.name))
        self._setup(model, dtype, engine_module)
        self.jit_compile = JIT_COMPILE if jit_compile is None else bool(jit_compile)
        specs = model.graph.params
        with self.name_scope:
            self.variables_by_name = {
                k: tf.Variable(v, trainable=specs[k].trainable, name=_identifier(k))
                for k, v in self.initial_weights().items()}
        self._functions = {}  # (T for unroll=True else None, jit) -> tf.function

    # -- Lowered hooks ------------------------------------------------------------
    def _describe(self, a):
        """(shape with None for unknown dims, dtype name) of a tf.Tensor or tf.Variable."""
        return tuple(a.shape), a.dtype.name

    def _initial_states(self, batch):
        if batch is None:  # symbolic x inside a caller's tf.function: filled in _run
            return [None] * len(self._state_values)
        return [tf.broadcast_to(tf.constant(v), (batch,) + v.shape) for v in self._state_values]

    def _run(self, x, states, consts):
        if any(s is None for s in states):
            batch = tf.shape(x)[0]
            states = [tf.broadcast_to(tf.constant(v), tf.stack([batch, *v.shape]))
                      if s is None else s for s, v in zip(states, self._state_values, strict=True)]
        if self.options.unroll is True and x.shape[1] is None:
            raise RshopShapeError(
                f"tensorflow layer of RecurrentModel {self.model.name!r}, argument x: expected a static "
                f"number of time steps for unroll=True, received shape {tuple(x.shape)}. Trace with a "
                "fixed T, or use unroll=False or an int.")
        ys, states = self._function(x.shape[1])(x, tuple(states), tuple(consts))
        return self._result(ys, states)

    def _read_weights(self):
        return {k: v.numpy() for k, v in self.variables_by_name.items()}

    def _write_weights(self, weights):
        for k, a in weights.items():
            self.variables_by_name[k].assign(a)

    # -- the traced loop ------------------------------------------------------------
    def _function(self, steps):
        """The tf.function running the loop: one per static T for unroll=True, else one.

        ``reduce_retracing``: the first call traces with its exact shapes (fastest: static
        shapes let TF fold the gradient's shape arithmetic), a call with new shapes traces
        once more with those dims relaxed to None, and later calls reuse that trace.
        XLA (``jit_compile``) is used only when no gradient tape is recording, since
        TensorFlow cannot hand the loop's gradient accumulators out of an XLA function.
        """
        jit = self.jit_compile and not _tape_recording()
        key = (steps if self.options.unroll is True else None, jit)
        fn = self._functions.get(key)
        if fn is None:
            # A partial (no __code__) makes TF count traces per layer, not per code object:
            # many layers tracing once each is not the "excessive retracing" TF warns about.
            fn = tf.function(functools.partial(self._loop), reduce_retracing=True, jit_compile=jit,
                             autograph=False)
            self._functions[key] = fn
        return fn

    def _loop(self, x, states, consts):
        # Read each variable once, outside the while loop; gradients flow through the read.
        P = {k: v.value() for k, v in self.variables_by_name.items()}
        return loop.scan(self.step_fn, P, x, states, consts, self.options)


def _tape_recording() -> bool:
    """Whether a GradientTape (or forward accumulator) could record right now."""
    if _record is None:
        return True  # unknown: stay on the path that always supports gradients
    return _record.could_possibly_record()


__all__ = ["TensorFlowLayer"]
