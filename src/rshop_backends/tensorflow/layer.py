"""The tensorflow engine's layer object: a ``tf.Module`` holding ``tf.Variable`` s.

``layer(x, initial_state=None, constants=None, **kwargs)`` (see
:class:`~rshop_backends.lowered.Lowered`) takes ``tf.Tensor`` / ``tf.Variable`` arguments,
x of shape (batch, T, *input_shape) ((batch, *input_shape) with ``decode``). The
engine-neutral checks and the execution plan (readout, teacher forcing, masks, dropout
masks, initial and carried states) are handled eagerly on every call (before any tracing,
so errors read as on every engine), then a ``tf.function`` (``reduce_retracing``) per
plan runs the loop of :mod:`.loop`: at most two traces per plan whatever the batch sizes,
sequence lengths and decode lengths, except ``unroll=True`` (which needs a static T): one
function per T.
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
    """A valid ``tf.Module`` name made from a model name: TensorFlow takes ASCII identifiers only
    (a name may hold any printable character, docs/format.md)."""
    out = re.sub(r"[^A-Za-z0-9_]", "_", name) or "recurrent_model"
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

    def __init__(self, model, dtype, engine_module, jit_compile=None, passes=None, fast_path=True):
        super().__init__(name=_identifier(model.name))
        self._setup(model, dtype, engine_module, passes, fast_path)
        self.jit_compile = JIT_COMPILE if jit_compile is None else bool(jit_compile)
        specs = model.param_specs
        with self.name_scope:
            self.variables_by_name = {
                k: tf.Variable(v, trainable=specs[k].trainable, name=_identifier(k))
                for k, v in self.initial_weights().items()}
        self._functions = {}  # (plan key, T for unroll=True else None, jit) -> tf.function

    # -- Lowered hooks ------------------------------------------------------------
    def _describe(self, a):
        """(shape with None for unknown dims, dtype name) of a tf.Tensor or tf.Variable."""
        return tuple(a.shape), a.dtype.name

    @tf.autograph.experimental.do_not_convert  # plain Python control flow: nothing for autograph to convert
    def _call(self, P, x, *args, **kwargs):
        return Lowered._call(self, P, x, *args, **kwargs)  # not super(): autograph mis-resolves it

    def _from_numpy(self, a):
        return tf.constant(a)

    def _broadcast(self, v, batch, like):
        """(batch, *v.shape); ``batch`` None (a symbolic x): the dynamic batch of ``like``."""
        shape = tuple(v.shape)
        if batch is None:
            return tf.broadcast_to(v, tf.stack([tf.shape(like)[0], *shape]))
        return tf.broadcast_to(v, (batch,) + shape)

    def _shift(self, seq, first, backwards):
        if backwards:
            return tf.concat([seq[:, 1:], first[:, None]], axis=1)
        return tf.concat([first[:, None], seq[:, :-1]], axis=1)

    def _lengths_to_mask(self, lengths, steps, like):
        if steps is None:  # unknown T while tracing: x's dynamic T
            steps = tf.shape(like)[1]
        return tf.range(steps, dtype=lengths.dtype)[None, :] < lengths[:, None]

    def _detach(self, v):
        return tf.stop_gradient(v)

    def _sum_abs(self, v):
        return tf.reduce_sum(tf.abs(v))

    def _sum_square(self, v):
        return tf.reduce_sum(tf.square(v))

    def _flip_time(self, y):
        return tf.reverse(y, axis=[1])

    def _concat_last(self, a, b):
        return tf.concat([a, b], axis=-1)

    def _param_dict(self):
        return self.variables_by_name

    def _loop(self, plan, P, xs, states, consts, steps):
        unroll = plan.options.unroll is True
        if unroll and steps is None:
            shape = tuple(xs[0].shape) if xs else None
            raise RshopShapeError(
                f"tensorflow layer of RecurrentModel {self.model.name!r}, argument x: expected a static "
                f"number of time steps for unroll=True, received shape {shape}. Trace with a "
                "fixed T, or use unroll=False or an int.")
        if xs:
            length = None  # T from the scanned sequences inside the function: no retrace per T
        else:  # decode: `steps` iterations; a tensor (one trace for every length) unless unrolled
            length = steps if unroll else tf.constant(steps, tf.int32)
        fn = self._function(plan, steps if unroll else None)
        ys, finals = fn(P, tuple(xs), tuple(states), tuple(consts), length)
        return list(ys), list(finals)

    def _read_weights(self):
        return {k: v.numpy() for k, v in self.variables_by_name.items()}

    def _write_weights(self, weights):
        for k, a in weights.items():
            self.variables_by_name[k].assign(a)

    # -- the traced loop ------------------------------------------------------------
    def _function(self, plan, steps):
        """The tf.function running the loop of ``plan``: one per static T for unroll=True, else one.

        ``reduce_retracing``: the first call traces with its exact shapes (fastest: static
        shapes let TF fold the gradient's shape arithmetic), a call with new shapes traces
        once more with those dims relaxed to None, and later calls reuse that trace.
        XLA (``jit_compile``) is used only when no gradient tape is recording, since
        TensorFlow cannot hand the loop's gradient accumulators out of an XLA function.
        """
        jit = self.jit_compile and not _tape_recording()
        key = (plan.key, steps, jit)
        fn = self._functions.get(key)
        if fn is None:
            # A partial (no __code__) makes TF count traces per layer, not per code object:
            # many layers tracing once each is not the "excessive retracing" TF warns about.
            fn = tf.function(functools.partial(self._traced, plan), reduce_retracing=True, jit_compile=jit,
                             autograph=False)
            self._functions[key] = fn
        return fn

    def _traced(self, plan, P, xs, states, consts, length):
        # Read each variable once, outside the while loop; gradients flow through the read.
        P = {k: v.value() if isinstance(v, tf.Variable) else v for k, v in P.items()}
        P, xs = self._prelude(plan, P, list(xs))
        return loop.scan(self._step(plan), P, xs, states, consts, plan.options, length)

    def _fold_time(self, a):
        return tf.reshape(a, [-1] + a.shape[2:].as_list())

    def _unfold_time(self, y, like):
        return tf.reshape(y, tf.concat([tf.shape(like)[:2], tf.shape(y)[1:]], axis=0))


def _tape_recording() -> bool:
    """Whether a GradientTape (or forward accumulator) could record right now."""
    if _record is None:
        return True  # unknown: stay on the path that always supports gradients
    return _record.could_possibly_record()


__all__ = ["TensorFlowLayer"]
