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
from typing import TYPE_CHECKING, Any

import numpy as np
import tensorflow as tf

from rshop_backends import parallel
from rshop_backends.lowered import Lowered
from rshop_backends.tensorflow import loop
from rshop_core.checks import call_dtype, empty_batch_message, empty_time_message, lengths_message, shape_message
from rshop_core.errors import RshopConfigError, RshopShapeError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from rshop_backends.engine import EngineSpec
    from rshop_core.checks import ArrayInfo
    from rshop_core.execution import Plan
    from rshop_core.lowerable import Lowerable
    from rshop_core.model import RecurrentModel

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
    # Python-side state that tf.Module must not track: caches keyed by tuples, the model, the
    # carried states. Tracked, they would be written into checkpoints and SavedModels (where a
    # dict with tuple keys cannot be saved at all). What is tracked: ``variables_by_name`` and
    # the dropout generator (so a checkpoint or SavedModel carries the weights and the RNG).
    _UNTRACKED = frozenset(
        {
            "model",
            "dtype",
            "options",
            "passes",
            "grad_passes",
            "fast_path",
            "step_fn",
            "_engine_module",
            "_plans",
            "_leaf_of",
            "_dropout_masks",
            "_codegen_context",
            "_functions",
            "_carried",
            "_stateful_batch",
            "_parts",
            "_dropout_rng",
            "_replica",
            "_call_x",
        }
    )
    _TF_MODULE_IGNORED_PROPERTIES = tf.Module._TF_MODULE_IGNORED_PROPERTIES | _UNTRACKED  # .variables skips them

    def __init__(
        self,
        model: Lowerable,
        dtype: str,
        engine: EngineSpec,
        passes: Sequence[str] | None = None,
        fast_path: bool | str = True,
        *,
        jit_compile: bool | None = None,
        **hooks: Any,
    ) -> None:
        tf.Module.__init__(self, name=_identifier(model.name))
        Lowered.__init__(self, model, dtype, engine, passes, fast_path, **hooks)
        self.jit_compile = JIT_COMPILE if jit_compile is None else bool(jit_compile)
        specs = model.param_specs
        with self.name_scope:
            self.variables_by_name = {
                k: tf.Variable(v, trainable=specs[k].trainable, name=_identifier(k))
                for k, v in self.initial_weights().items()
            }
            # dropout masks of calls traced by the user (tf.function, SavedModel): drawn in the graph
            self._dropout_generator = tf.random.Generator.from_seed(_generator_seed(model.seed))
        self._functions: dict[
            tuple[Any, ...], Any
        ] = {}  # (id of the plan, T for unroll=True else None, jit) -> tf.function
        self._call_x = None  # the x of the call being run (its dynamic batch sizes graph-drawn masks)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self._UNTRACKED:
            object.__setattr__(self, name, value)  # plain Python state: not a tf.Module dependency
        else:
            super().__setattr__(name, value)

    # -- Lowered hooks ------------------------------------------------------------
    def _describe(self, a: Any) -> ArrayInfo:
        """(shape with None for unknown dims, or None for an unknown rank; dtype name) of a
        tf.Tensor or tf.Variable."""
        return (None if a.shape.rank is None else tuple(a.shape)), a.dtype.name

    @tf.autograph.experimental.do_not_convert  # plain Python control flow: nothing for autograph to convert
    def _call(self, P: dict[str, Any], x: Any, *args: Any, **kwargs: Any) -> Any:
        if self._replica[1] > 1 and _replicas_in_sync() > 1:
            raise RshopConfigError(
                f"{self._where}: expected set_replica to be left at (0, 1) under a tf.distribute strategy with "
                f"{_replicas_in_sync()} replicas, received {self._replica} (set_replica is for one process per "
                "replica, like torch DDP; a strategy's replicas share this one layer object). Call "
                "layer.set_replica(0, 1)."
            )
        if self.options.stateful and _replicas_in_sync() > 1:
            raise RshopConfigError(
                f"{self._where}: expected a model with stateful=False under a tf.distribute strategy with "
                f"{_replicas_in_sync()} replicas, received stateful=True (its replicas share this one layer "
                "object, which can keep one carried state, not one per replica). Carry the states yourself: "
                "return_states=True, and pass each replica's final states back as initial_state= in strategy.run."
            )
        self._call_x = x
        try:
            return Lowered._call(self, P, x, *args, **kwargs)  # not super(): autograph mis-resolves it
        finally:
            self._call_x = None  # never keep a traced tensor alive past its trace

    def _check_unknown_dims(self, model: RecurrentModel, x: Any, batch: int | None, steps: int | None) -> Any:
        """Inside a trace with dimensions unknown (a ``None`` batch or T, or feature sizes of
        ``None`` in the input signature), graph assertions with the messages ``check_call``
        gives eager calls: a call of the traced function that breaks one raises
        ``tf.errors.InvalidArgumentError`` with that text (no Python runs at that point)."""
        shape = tuple(x.shape)
        if None not in shape or tf.executing_eagerly():
            return x
        name = f"RecurrentModel {model.name!r}"
        lead = 1 if model.options.decode else 2
        graph = model.graph
        assert graph is not None, "a lowered model is built"
        per_example = graph.nodes[graph.x[0]].type.shape
        dyn = tf.shape(x)
        checks = []
        if batch is None:
            checks.append(tf.debugging.assert_greater(dyn[0], 0, message=empty_batch_message(name, (0,) + shape[1:])))
        if steps is None:
            checks.append(
                tf.debugging.assert_greater(dyn[1], 0, message=empty_time_message(name, shape[:1] + (0,) + shape[2:]))
            )
        for i, (want, got) in enumerate(zip(per_example, shape[lead:])):
            if got is None and want is not None:
                checks.append(
                    tf.debugging.assert_equal(
                        dyn[lead + i],
                        want,
                        message=shape_message(f"{name}, argument x", per_example, shape, time=lead == 2),
                    )
                )
        if not checks:
            return x
        with tf.control_dependencies(checks):
            return tf.identity(x)

    def _draw_dropout(self, shape: tuple[int, ...], rate: float, batch: int | None, key: Any, index: int) -> Any:
        """Eager calls: numpy masks, the same on every engine. Traced calls (a user's
        ``tf.function``, a SavedModel signature): masks drawn in the graph from the layer's
        ``tf.random.Generator``, so every run of the traced function gets fresh ones (numpy masks
        would be frozen into the graph as constants). One mask per sequence either way."""
        if _replicas_in_sync() > 1:
            self._check_replicated_dropout()
        if key is not None or tf.executing_eagerly():
            return super()._draw_dropout(shape, rate, batch, key, index)
        n = tf.shape(self._call_x)[0] if batch is None else batch
        rank, replicas = self._replica  # set_replica: the global batch's masks, this replica's rows
        keep = self._dropout_generator.uniform(tf.stack([n * replicas, *shape]), dtype=tf.float32) >= rate
        if replicas > 1:
            keep = keep[rank * n : (rank + 1) * n]
        return tf.cast(keep, self.dtype) / (1.0 - rate)

    def _check_replicated_dropout(self) -> None:
        """Dropout in a replica of a tf.distribute strategy: masks come from the layer's graph generator, which
        must have been made inside the strategy's scope (then each replica draws its own deterministic stream,
        tf.random.Generator's rule); eager replicas (threads sharing numpy's generator) are refused."""
        n = _replicas_in_sync()
        if tf.executing_eagerly():
            raise RshopConfigError(
                f"{self._where}: expected a training call with dropout under a tf.distribute strategy with {n} "
                "replicas to run inside a tf.function, received an eager strategy.run (its replicas run as "
                "threads sharing one numpy mask generator, so which replica gets which masks would be left to "
                "chance). Wrap the call of strategy.run in a tf.function."
            )
        if getattr(self._dropout_generator, "_distribution_strategy", None) is None:
            raise RshopConfigError(
                f"{self._where}: expected a layer lowered inside the scope of the tf.distribute strategy that runs "
                f"it ({n} replicas) for a training call with dropout, received one lowered outside it (its mask "
                "generator would be read by the replicas in turn, in no fixed order). Lower the model inside "
                "`with strategy.scope():`."
            )

    def reseed(self, seed: int) -> None:
        """Restart the dropout masks: numpy's (eager calls) and the graph generator's (traced calls)."""
        super().reseed(seed)
        self._dropout_generator.reset_from_seed(_generator_seed(seed))

    def serving_signature(self, output_length: int | None = None) -> Any:
        """An inference ``tf.function`` for ``tf.saved_model.save(layer, path, signatures=...)``.

        Its inputs: ``x`` with a dynamic batch and T (``tf.TensorSpec([None, None, *input_shape])``;
        ``[None, *input_shape]`` with ``decode``, running ``output_length`` steps) and the model's
        constants (``constant_0``, ... of shape ``[None, *shape]``); its outputs: a dict
        ``output_0``, ``output_1``, ... in the order a call returns them.
        """
        part = self._parts[0]
        g = part.graph
        assert g is not None, "a lowered model is built"
        if part.options.decode and output_length is None and part.options.output_length is None:
            raise RshopConfigError(
                f"{self._where}, serving_signature argument output_length: expected the number of "
                "steps to decode (decode=True and no output_length option), received None."
            )
        lead = [None] if part.options.decode else [None, None]
        names = ["x"] + [f"constant_{i}" for i in range(len(g.constants))]
        types = [g.nodes[i].type for i in (g.x[0], *g.constants)]
        specs = [  # ids, masks: int32 / bool as declared; floats in this layer's dtype
            tf.TensorSpec(lead[: 1 if i else None] + list(t.shape), call_dtype(t.dtype, self.dtype), name=n)
            for i, (n, t) in enumerate(zip(names, types))
        ]

        def serve(x: Any, *constants: Any) -> Any:
            out = self(x, constants=list(constants) or None, output_length=output_length)
            out = out if isinstance(out, tuple) else (out,)
            return {f"output_{i}": y for i, y in enumerate(out)}

        return tf.function(serve, input_signature=specs, autograph=False)

    def _from_numpy(self, a: np.ndarray) -> Any:
        return tf.constant(a)

    def _broadcast(self, v: Any, batch: int | None, like: Any) -> Any:
        """(batch, *v.shape); ``batch`` None (a symbolic x): the dynamic batch of ``like``."""
        shape = tuple(v.shape)
        if batch is None:
            return tf.broadcast_to(v, tf.stack([tf.shape(like)[0], *shape]))
        return tf.broadcast_to(v, (batch,) + shape)

    def _shift(self, seq: Any, first: Any, backwards: bool) -> Any:
        if backwards:
            return tf.concat([seq[:, 1:], first[:, None]], axis=1)
        return tf.concat([first[:, None], seq[:, :-1]], axis=1)

    def _lengths_to_mask(self, lengths: Any, steps: int | None, like: Any) -> Any:
        if steps is None:  # unknown T while tracing: x's dynamic T
            steps = tf.shape(like)[1]
        return tf.range(steps, dtype=lengths.dtype)[None, :] < lengths[:, None]

    def _lengths_guard(self, model: RecurrentModel, lengths: Any, steps: int | None, like: Any) -> tuple[Any, Any]:
        """Inside a tf.function: a ``tf.debugging.Assert`` with the eager check's message, run with the call."""
        n = tf.cast(tf.shape(like)[1], lengths.dtype) if steps is None else tf.constant(steps, lengths.dtype)
        bad = (lengths < 0) | (lengths > n)
        i = tf.argmax(tf.cast(bad, tf.int32))
        template = lengths_message(model, "{}", "{}", "{}")  # the eager message, filled in when it runs
        check = tf.debugging.Assert(
            tf.logical_not(tf.reduce_any(bad)), [tf.strings.format(template, (n, tf.gather(lengths, i), i))]
        )
        with tf.control_dependencies([check]):
            return tf.identity(lengths), None

    def _detach(self, v: Any) -> Any:
        return tf.stop_gradient(v)

    def _sum_abs(self, v: Any) -> Any:
        return tf.reduce_sum(tf.abs(v))

    def _sum_square(self, v: Any) -> Any:
        return tf.reduce_sum(tf.square(v))

    def _norm(self, v: Any, axes: tuple[int, ...]) -> Any:
        return tf.sqrt(tf.reduce_sum(tf.square(v), axis=list(axes), keepdims=True))

    def _clip(self, v: Any, lo: float, hi: float) -> Any:
        return tf.clip_by_value(v, lo, hi)

    def _assign_params(self, values: dict[str, Any]) -> None:
        for q, v in values.items():
            self.variables_by_name[q].assign(v)

    def _flip_time(self, y: Any) -> Any:
        return tf.reverse(y, axis=[1])

    def _to_host(self, a: Any) -> np.ndarray | None:
        return a.numpy() if tf.executing_eagerly() else None

    def _concat_last(self, a: Any, b: Any) -> Any:
        return tf.concat([a, b], axis=-1)

    def _param_dict(self) -> dict[str, Any]:
        return self.variables_by_name

    def _loop(
        self, plan: Plan, P: dict[str, Any], xs: list[Any], states: list[Any], consts: list[Any], steps: int | None
    ) -> tuple[Sequence[Any], Sequence[Any]]:
        unroll = plan.options.unroll is True
        if unroll and steps is None:
            shape = tuple(xs[0].shape) if xs else None
            raise RshopShapeError(
                f"tensorflow layer of RecurrentModel {self.model.name!r}, argument x: expected a static "
                f"number of time steps for unroll=True, received shape {shape}. Trace with a "
                "fixed T, or use unroll=False or an int."
            )
        # with xs, T comes from the scanned sequences inside the function (no retrace per T); a decode
        # runs `steps` iterations, given as a tensor (one trace for every length) unless unrolled
        length = None if xs else (steps if unroll else tf.constant(steps, tf.int32))
        if parallel.wanted(self, plan, steps, self._batch_of(states)):  # one trace per T: the scan's depth follows T
            fn = self._function(plan, ("parallel", steps))
            ys, finals = fn(P, tuple(xs), tuple(states), tuple(consts), steps)
            return list(ys), list(finals)
        fn = self._function(plan, steps if unroll else None)
        ys, finals = fn(P, tuple(xs), tuple(states), tuple(consts), length)
        return list(ys), list(finals)

    def _read_weights(self) -> dict[str, Any]:
        return {k: v.numpy() for k, v in self.variables_by_name.items()}

    def _write_weights(self, weights: dict[str, np.ndarray]) -> None:
        for k, a in weights.items():
            self.variables_by_name[k].assign(a)

    # -- the traced loop ------------------------------------------------------------
    def _function(self, plan: Plan, steps: int | tuple[str, int | None] | None) -> Any:
        """The tf.function running the loop of ``plan``: one per static T for unroll=True, else one.

        ``reduce_retracing``: the first call traces with its exact shapes (fastest: static
        shapes let TF fold the gradient's shape arithmetic), a call with new shapes traces
        once more with those dims relaxed to None, and later calls reuse that trace.
        XLA (``jit_compile``) is used only when no gradient tape is recording, since
        TensorFlow cannot hand the loop's gradient accumulators out of an XLA function.
        """
        jit = self.jit_compile and not _tape_recording()
        key = (id(plan), steps, jit)  # plans live in self._plans: their ids are stable
        fn = self._functions.get(key)
        if fn is None:
            # A partial (no __code__) makes TF count traces per layer, not per code object:
            # many layers tracing once each is not the "excessive retracing" TF warns about.
            body = self._traced_parallel if isinstance(steps, tuple) else self._traced
            fn = tf.function(functools.partial(body, plan), reduce_retracing=True, jit_compile=jit, autograph=False)
            self._functions[key] = fn
        return fn

    def _traced(
        self,
        plan: Plan,
        P: dict[str, Any],
        xs: Sequence[Any],
        states: Sequence[Any],
        consts: Sequence[Any],
        length: Any,
    ) -> tuple[list[Any], list[Any]]:
        # Read each variable once, outside the while loop; gradients flow through the read.
        P = {k: v.value() if isinstance(v, tf.Variable) else v for k, v in P.items()}
        P, xs = self._prelude(plan, P, list(xs))
        return loop.scan(self._step(plan), P, xs, states, consts, plan.options, length)

    def _traced_parallel(
        self, plan: Plan, P: dict[str, Any], xs: Sequence[Any], states: Sequence[Any], consts: Sequence[Any], steps: Any
    ) -> tuple[Sequence[Any], Sequence[Any]]:
        """The parallel loop over ``steps`` time steps (:mod:`rshop_backends.parallel`); ``steps`` is
        None when T is unknown while tracing (a Keras ``fit``): then it is read in the graph."""
        P = {k: v.value() if isinstance(v, tf.Variable) else v for k, v in P.items()}
        P, xs = self._prelude(plan, P, list(xs))
        if steps is None:
            steps = tf.shape(xs[0])[1]

        def sequential() -> tuple[Sequence[Any], Sequence[Any]]:
            return loop.scan(self._step(plan), P, xs, states, consts, plan.options, None if xs else steps)

        return parallel.run(self, plan, P, xs, list(states), list(consts), steps, sequential)

    def _fold_time(self, a: Any) -> Any:
        return tf.reshape(a, [-1] + a.shape[2:].as_list())

    def _unfold_time(self, y: Any, like: Any) -> Any:
        return tf.reshape(y, tf.concat([tf.shape(like)[:2], tf.shape(y)[1:]], axis=0))


def _replicas_in_sync() -> int:
    """How many replicas run this call in sync: that of the tf.distribute replica context it runs in (1 outside
    any strategy, or in the default one)."""
    if not tf.distribute.has_strategy() or tf.distribute.in_cross_replica_context():
        return 1
    ctx = tf.distribute.get_replica_context()
    return 1 if ctx is None else int(ctx.num_replicas_in_sync)


def _generator_seed(seed: int) -> int:
    """The graph dropout generator's seed for a model / reseed seed (apart from other streams)."""
    return int(seed) * 256 + 0xD0


def _tape_recording() -> bool:
    """Whether a GradientTape (or forward accumulator) could record right now."""
    if _record is None:
        return True  # unknown: stay on the path that always supports gradients
    return _record.could_possibly_record()


__all__ = ["TensorFlowLayer"]
