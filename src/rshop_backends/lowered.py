"""What every engine's layer object shares: the call path, checks, results, weights.

An engine's layer class mixes in :class:`Lowered` and implements small hooks over its own
arrays: ``_describe(a) -> (shape, dtype)``, ``_native`` (accepted array types),
``_from_numpy(a)``, ``_broadcast(v, batch, like)``, ``_shift(seq, first, backwards)``,
``_lengths_to_mask(lengths, steps, like)``, ``_detach(v)``, ``_sum_abs(v)``, ``_sum_square(v)``,
``_param_dict()``, ``_flip_time(y)``, ``_concat_last(a, b)``,
``_loop(plan, P, xs, states, consts, steps)`` (running with ``plan.options``) and the weight accessors
``_read_weights()`` / ``_write_weights(d)``. Everything else — checks, execution plans,
initial states, dropout masks, stateful carry, what a call returns — is here, once.
"""

from __future__ import annotations

import numpy as np

from rshop_core import initializers
from rshop_core.bidirectional import Bidirectional
from rshop_core.checks import check_array, check_call
from rshop_core.errors import RshopConfigError, RshopEngineError, RshopShapeError
from rshop_core.execution import plan_for
from rshop_core.model import check_weights, learned_state_param

from . import codegen


def compiled_step(model, engine_module, dtype: str, plan):
    """The generated step of a plan for an engine, cached per (engine, dtype, plan) on the model."""
    key = (engine_module.NAME, dtype, plan.key)
    cache = model._lowered_cache
    if key not in cache:
        ops = engine_module.ops
        cache[key] = codegen.generate(plan.graph, ops.EMITTERS, ops.NAMESPACE, ops.constant, dtype,
                                      engine_module.NAME)
    return cache[key]


class Lowered:
    """Mixin for engine layer objects.

    ``layer(x, initial_state=None, constants=None, *, mask=None, sequence_lengths=None,
    ground_truth=None, initial_readout=None, training=False, output_length=None)``

    ``x``: (batch, T, *input_shape), or (batch, *input_shape) with ``decode``. Returns the
    output ((batch, T, ...) with ``return_sequences``, else the last step's), followed by the
    final states as a tuple ``(y, *states)`` when ``return_states``; a model with several
    outputs returns them all first. ``training`` turns dropout on and, with ``ground_truth``,
    teacher forcing.
    """

    engine: str = "?"
    _native: tuple = ()  # the array types this engine accepts
    _native_names: str = ""  # how error messages name them (default: module.qualname)

    def _setup(self, model, dtype, engine_module):
        self.model, self.dtype, self.options = model, dtype, model.options
        self._engine_module = engine_module
        self._dropout_rng = np.random.default_rng([model.seed, 0xD0])
        self._carried = None  # stateful: the final states of the last call
        self._parts = [model.forward, model.backward] if isinstance(model, Bidirectional) else [model]
        self.step_fn = self._step(plan_for(self._parts[0], False, False, False))

    def _step(self, plan):
        return compiled_step(self.model, self._engine_module, self.dtype, plan)

    @property
    def _where(self):
        return f"{self.engine} layer of {type(self.model).__name__} {self.model.name!r}"

    # -- checks -----------------------------------------------------------------
    def _info(self, arr, what):
        if not isinstance(arr, self._native):
            want = self._native_names or " or ".join(f"{t.__module__}.{t.__qualname__}" for t in self._native)
            raise RshopEngineError(
                f"{self._where}, {what}: expected {want}, received {type(arr).__module__}."
                f"{type(arr).__qualname__}. Convert it to the {self.engine} engine's arrays first.")
        return self._describe(arr)

    def _listed(self, v, what):
        if v is None:
            return None, None
        v = list(v) if isinstance(v, (list, tuple)) else [v]
        return [self._info(a, f"{what} #{i}") for i, a in enumerate(v)], v

    def _one(self, v, what):
        return None if v is None else self._info(v, what)

    # -- calling ------------------------------------------------------------------
    def __call__(self, x, initial_state=None, constants=None, **kwargs):
        return self._call(self._param_dict(), x, initial_state, constants, **kwargs)

    def _call(self, P, x, initial_state=None, constants=None, **kwargs):
        st_info, states_given = self._listed(initial_state, "initial state")
        k_info, consts_given = self._listed(constants, "constant")
        if len(self._parts) == 1:
            ys, finals = self._run_model(self.model, P, x, st_info, states_given, k_info, consts_given, **kwargs)
            return self._result(ys, finals)
        # Bidirectional: the forward model, then the backward copy; states split between them
        if st_info is not None and len(st_info) != len(self.model.state_specs):
            raise RshopConfigError(
                f"{self._where}, argument initial_state: expected {len(self.model.state_specs)} states "
                f"{[s.name for s in self.model.state_specs]}, received {len(st_info)}.")
        n = len(self._parts[0].state_specs)
        halves = [(st_info, states_given)] * 2 if st_info is None else \
            [(st_info[:n], states_given[:n]), (st_info[n:], states_given[n:])]
        (yf, sf), (yb, sb) = [self._run_model(m, P, x, si, sg, k_info, consts_given, **kwargs)
                              for m, (si, sg) in zip(self._parts, halves)]
        if self.options.return_sequences:  # the backward outputs come in processing order: back to time order
            yb = [self._flip_time(y) for y in yb]
        mode = self.model.merge_mode
        merge = {"concat": self._concat_last, "sum": lambda a, b: a + b, "mul": lambda a, b: a * b,
                 "ave": lambda a, b: (a + b) * 0.5}
        ys = yf + yb if mode is None else [merge[mode](a, b) for a, b in zip(yf, yb)]
        return self._result(ys, sf + sb)

    def _run_model(self, model, P, x, st_info, states_given, k_info, consts_given, *, mask=None,
                   sequence_lengths=None, ground_truth=None, initial_readout=None, training=False,
                   output_length=None, dropout_key=None):
        """Run one model's plan; returns (user outputs, user final states)."""
        batch, steps = check_call(
            model, self.dtype, self._info(x, "argument x"), st_info, k_info,
            self._one(mask, "argument mask"), self._one(sequence_lengths, "argument sequence_lengths"),
            self._one(ground_truth, "argument ground_truth"), self._one(initial_readout, "argument initial_readout"),
            bool(training), output_length)
        teacher = bool(training) and ground_truth is not None
        plan = plan_for(model, bool(training), teacher, mask is not None or sequence_lengths is not None)
        opts = model.options
        readout = None
        if model.readout_spec is not None:
            readout = initial_readout if initial_readout is not None else self._zeros(model.readout_spec.shape,
                                                                                      batch, x)
        xs = []
        for src in plan.scan:
            if src == "x":
                xs.append(x)
            elif src == "ground_truth":
                xs.append(self._shift(ground_truth, readout, opts.go_backwards))
            else:
                xs.append(mask if mask is not None else self._lengths_to_mask(sequence_lengths, steps, x))
        user = list(states_given) if states_given is not None else self._default_states(model, P, batch, x)
        g = model.graph
        states = []
        for src in plan.states:
            if src[0] == "state":
                states.append(user[src[1]])
            elif src[0] == "readout":
                states.append(readout)
            else:  # ("hold", j): the output held through masked steps starts at zeros
                states.append(self._zeros(g.nodes[g.outputs[src[1]]].type.shape, batch, x))
        consts = []
        for src in plan.constants:
            if src[0] == "constant":
                consts.append(consts_given[src[1]])
            elif src[0] == "x":
                consts.append(x)
            else:  # ("dropout", node, rate): one mask per sequence
                consts.append(self._draw_dropout(g.nodes[src[1]].type.shape, src[2], batch, dropout_key, src[1]))
        ys, finals = self._loop(plan, P, xs, states, consts, steps)
        user_finals = [f for f, src in zip(finals, plan.states) if src[0] == "state"]
        if opts.stateful:
            self._carried = [self._detach(f) for f in user_finals]
        return list(ys)[:plan.n_outputs], user_finals

    def _result(self, ys: list, states: list):
        out = list(ys)
        if self.options.return_states:
            out += list(states)
        return out[0] if len(out) == 1 else tuple(out)

    # -- initial states -------------------------------------------------------------
    def _need_batch(self, batch, what):
        if batch is None:
            raise RshopShapeError(f"{self._where}: expected a known batch size for {what}, received an unknown one.")

    def _zeros(self, shape, batch, like):
        return self._broadcast(self._from_numpy(np.zeros(shape, self.dtype)), batch, like)

    def _default_states(self, model, P, batch, like):
        if self._carried is not None:
            return list(self._carried)
        out = []
        for s in model.state_specs:
            init = s.initializer
            if isinstance(init, initializers.Learned):
                out.append(self._broadcast(P[learned_state_param(s.name)], batch, like))
            elif init.random:  # drawn per call, for this batch, from the model seed: identical everywhere
                self._need_batch(batch, f"the random initial state {s.name!r}")
                rng = initializers.rng_for(model.seed, learned_state_param(s.name))
                out.append(self._from_numpy(init((batch,) + s.shape, self.dtype, rng)))
            else:
                out.append(self._broadcast(self._from_numpy(init(s.shape, self.dtype)), batch, like))
        return out

    def _draw_dropout(self, shape, rate, batch, key, index):
        """A dropout mask (batch, *shape) scaled by 1/(1-rate), drawn by numpy from the layer's
        generator: the same masks on every engine. ``key`` is the jax engine's (``dropout_key``)."""
        if key is not None:
            raise RshopConfigError(f"{self._where}, argument dropout_key: expected None (a jax PRNG key is for the "
                                   "jax engine), received one. Use layer.reseed(seed) to choose the masks.")
        self._need_batch(batch, "dropout masks")
        keep = self._dropout_rng.random((batch,) + tuple(shape)) >= rate
        return self._from_numpy((keep / (1.0 - rate)).astype(self.dtype))

    def reseed(self, seed: int) -> None:
        """Restart the dropout mask generator (masks are drawn by numpy: same seed, same masks everywhere)."""
        self._dropout_rng = np.random.default_rng([int(seed), 0xD0])

    # -- stateful -------------------------------------------------------------------
    def reset_states(self, values=None) -> None:
        """Forget the carried states (``values=None``) or set them (a list, one per state)."""
        if not self.options.stateful:
            raise RshopConfigError(f"{self._where}, reset_states: expected a model with stateful=True, "
                                   "received stateful=False.")
        if values is None:
            self._carried = None
            return
        info, values = self._listed(values, "reset_states value")
        check_call_states(self, info)
        self._carried = list(values)

    @property
    def states(self):
        """The carried states of a stateful layer (None before the first call or after a reset)."""
        return None if self._carried is None else list(self._carried)

    # -- weights ------------------------------------------------------------------
    def get_weights(self) -> dict:
        """The current parameters as numpy arrays keyed by qualified name."""
        return {k: np.array(v) for k, v in self._read_weights().items()}

    def set_weights(self, weights: dict) -> None:
        """Replace every parameter; names, shapes and dtypes must match (in ``self.dtype``)."""
        self._write_weights(check_weights(self._where, self.model.param_specs, weights, self.dtype))

    def save(self, path):
        """Write the model with this layer's CURRENT (e.g. trained) weights to a ``.rshop`` file.

        Weights are stored in the model's dtype (a float64 lowering of a float32 model is cast back).
        """
        from rshop_core.serialization import save

        weights = {k: v.astype(self.model.param_specs[k].dtype) for k, v in self.get_weights().items()}
        return save(self.model, path, weights)

    def initial_weights(self) -> dict:
        """The model's weights in this layer's dtype."""
        return {k: v.astype(self.dtype) for k, v in self.model._weights.items()}

    def regularization_loss(self, params=None):
        """``sum(l1 * |w| + l2 * w**2)`` over the regularized parameters, as an engine scalar."""
        P = self._param_dict() if params is None else params
        total = self._from_numpy(np.zeros((), self.dtype))
        for k, spec in self.model.param_specs.items():
            r = spec.regularizer
            if r and r["l1"]:
                total = total + r["l1"] * self._sum_abs(P[k])
            if r and r["l2"]:
                total = total + r["l2"] * self._sum_square(P[k])
        return total


def check_call_states(layer, info):
    """Check states given to ``reset_states`` like initial states of a batch of ``batch_size``."""
    specs = layer.model.state_specs
    if len(info) != len(specs):
        raise RshopConfigError(f"{layer._where}, reset_states: expected {len(specs)} states "
                               f"{[s.name for s in specs]}, received {len(info)}.")
    for i, (spec, inf) in enumerate(zip(specs, info)):
        check_array(f"{layer._where}, reset_states value #{i} {spec.name!r}", inf, spec.shape, layer.dtype,
                    layer.options.batch_size)
