"""RecurrentModel: a step graph plus states and loop options, i.e. a whole recurrent layer."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from . import initializers
from .dtypes import DEFAULT_FLOAT, FLOAT_DTYPES
from .errors import RshopConfigError, RshopDTypeError, RshopShapeError
from .graph import StepGraph
from .keywords import checked_init
from .limits import check_name, check_param_count, check_states
from .lowerable import Lowerable, Runner
from .options import LoopOptions
from .specs import ParamSpec, StateSpec
from .symbolic import Tensor
from .tracing import trace
from .types import TensorType
from .weights import check_weights

if TYPE_CHECKING:
    from .cells.nested import ModelCell

__all__ = ["RecurrentModel", "learned_state_param"]

Tensors = Tensor | Sequence[Tensor]
"""One Tensor or a list of them (a step's outputs, states or constants)."""
Builder = Callable[[int], tuple[Any, ...]]
"""``builder(input_dim) -> (input, output, initial_states, final_states, constants[, readout_input])``."""
StateInitializers = initializers.InitializerLike | Sequence[initializers.InitializerLike] | None
"""``state_initializer=``: one initializer for every state, one per state, or None (zeros)."""


def learned_state_param(state: str) -> str:
    """The qualified name of the parameter holding a learned initial state."""
    return f"initial_state/{state}"


def check_seed(where: str, seed: object) -> int:
    """``seed`` if it is a non-negative int (not a bool); else an RshopConfigError."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise RshopConfigError(
            f"{where}, argument seed: expected a non-negative int, received {seed!r}. "
            "Seeds are never rounded or parsed: pass an int such as 7."
        )
    return int(seed)


def check_state_names(where: str, names: Iterable[str]) -> None:
    """Refuse two states with one name: they would share a learned initial state and a file entry."""
    first: dict[str, int] = {}
    for i, n in enumerate(names):
        if n in first:
            raise RshopConfigError(
                f"{where}, state #{i} {n!r}: expected a name unique among the states, received the name of "
                f"state #{first[n]} too. Give each state Input its own name=."
            )
        first[n] = i


def _as_list(v: object, what: str) -> list[Tensor]:
    if v is None:
        return []
    if isinstance(v, Tensor):
        return [v]
    if isinstance(v, (list, tuple)):
        return list(v)
    raise RshopConfigError(f"RecurrentModel: expected {what} as a Tensor or a list of Tensors, received {v!r}.")


def _readout_wiring(where: str, readout_input: object, outputs: list[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
    """``(extra state Inputs, extra final states)`` that carry a readout as the last state."""
    if readout_input is None:
        return [], []
    if not isinstance(readout_input, Tensor) or readout_input.op != "input":
        raise RshopConfigError(f"{where}: expected readout_input to be an rshop Input, received {readout_input!r}.")
    if outputs and readout_input.type != outputs[0].type:
        raise RshopShapeError(
            f"{where}, readout_input: expected the type of the output {outputs[0].type.describe()}, "
            f"received {readout_input.type.describe()}. The readout is the previous step's output."
        )
    return [readout_input], outputs[:1]


def _batch_of_inputs(where: str, inputs: list[Tensor], options: LoopOptions) -> LoopOptions:
    """``options`` with the batch fixed by ``Input(batch_shape=...)``: refused when two Inputs or
    ``batch_size=`` disagree; a stateful model takes it as its ``batch_size``."""
    fixed = [(t.name, t.batch) for t in inputs if isinstance(t, Tensor) and t.batch is not None]
    if not fixed:
        return options
    name, batch = fixed[0]
    for other, b in fixed[1:]:
        if b != batch:
            raise RshopShapeError(
                f"{where}, Input {other!r}: expected the batch size of Input {name!r} ({batch}), received "
                f"batch_shape with {b}. A step's Inputs share one batch."
            )
    if options.batch_size is not None and options.batch_size != batch:
        raise RshopConfigError(
            f"{where}: expected batch_size equal to the batch of Input {name!r} ({batch}), received "
            f"batch_size={options.batch_size}. Give the batch once: batch_shape= or batch_size=."
        )
    return replace(options, batch_size=batch) if options.stateful else options


def compute_dtype(graph: StepGraph, params: Iterable[ParamSpec] = (), states: Iterable[StateSpec] = ()) -> str:
    """The float dtype a model computes in: its input x's when x is float; for an int32 or bool x
    (token ids, a mask), that of its first parameter, else of its first state, else float32."""
    x_dtype = graph.nodes[graph.x[0]].type.dtype
    if x_dtype in FLOAT_DTYPES:
        return x_dtype
    specs: list[ParamSpec | StateSpec] = [*params, *states]
    return specs[0].dtype if specs else DEFAULT_FLOAT


def _check_param_dtypes(where: str, param_specs: dict[str, ParamSpec], dtype: str, x_float: bool = True) -> None:
    whose = "the input's" if x_float else "the model's: its first parameter's"
    for p in param_specs.values():
        if p.dtype != dtype:
            raise RshopDTypeError(
                f"{where}, parameter {p.name!r}: expected dtype {dtype} ({whose}), received {p.dtype}."
            )


def _check_parts(
    where: str,
    graph: StepGraph,
    state_specs: list[StateSpec],
    readout_spec: StateSpec | None,
    options: LoopOptions,
) -> dict[str, ParamSpec]:
    """The checks a model's parts pass however they were made (built from Tensors or loaded from
    a file): unique state names, states the loop can carry, learned initial states that are new
    parameters, every parameter of the input's dtype. Returns the model's parameter specs: the
    graph's, then one per learned initial state."""
    check_state_names(where, [s.name for s in state_specs])
    check_states(state_specs + ([readout_spec] if readout_spec else []), options, where)
    param_specs = dict(graph.params)
    for s in state_specs:  # learned initial states are parameters of the model
        if isinstance(s.initializer, initializers.Learned):
            name = learned_state_param(s.name)
            if name in param_specs:
                raise RshopConfigError(
                    f"{where}, state {s.name!r}: expected its learned initial state {name!r} to be a new "
                    "parameter, received the name of a layer's parameter. Rename the layer or the state."
                )
            param_specs[name] = ParamSpec(name, s.shape, s.dtype, s.initializer.initializer)
    x_float = graph.nodes[graph.x[0]].type.dtype in FLOAT_DTYPES
    _check_param_dtypes(where, param_specs, compute_dtype(graph, param_specs.values(), state_specs), x_float)
    return param_specs


class RecurrentModel(Lowerable):
    """A recurrent layer defined by the graph of one time step.

    The step maps ``(input_t, states_{t-1}, constants)`` to ``(output_t, states_t)``; the
    model runs it over a sequence ``x`` of shape ``(batch, T, *input_shape)``. Its meaning is
    this loop (the numpy engine *is* this loop)::

        states = initial_state or [init(batch) for init in state initializers]
        outputs = []
        for t in (reversed(range(T)) if go_backwards else range(T)):
            y, states = step(x[:, t], states, constants)
            outputs.append(y)
        y = stack(outputs, axis=1) if return_sequences else outputs[-1]
        return (y, *states) if return_states else y

    Args:
        input: the ``Input`` of one time step (per-example shape, no batch, no time).
        output: the step's output Tensor, or a list (the first is the main output).
        initial_states: Inputs for the states at t-1.
        final_states: the Tensors for the states at t, in the order of ``initial_states``, of the same shapes
            and dtypes.
        constants: Inputs seen unchanged at every step (passed as ``constants=`` at call).
        readout_input: an Input shaped like the (first) output: the output of step t-1
            (zeros, or ``initial_readout=`` at call, before step 0).
        **options: keywords, each checked by name:

            - ``teacher_force``: with ``ground_truth=`` at a training call, the readout is
              ground_truth[t-1] instead (needs ``readout_input``).
            - ``decode``, ``output_length``: x is one tensor seen at each of ``output_length`` steps.
            - ``return_sequences``, ``return_states``, ``go_backwards``, ``unroll``, ``stateful``, ``batch_size``,
              ``zero_output_for_mask``, ``remat``, ``time_parallel``, ``newton_tol``, ``newton_max_iter``: see
              :class:`LoopOptions`.
            - ``state_initializer``: one initializer for all states or a list, one per state
              (default zeros): any initializer (random ones are drawn per call from the
              model seed, the same on every engine) or ``initializers.Learned(...)``.
            - ``name``: the model's name; ``seed``: the seed of its initial weights (random if None).
    """

    KIND = "RecurrentModel"
    _weight_values: dict | None  # behind the _weights property: None until first drawn

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if "__init__" in cls.__dict__:  # keywords passed on with **options are checked against ours
            # the wrapper keeps the signature; mypy refuses any assignment to a method
            cls.__init__ = checked_init(cls.__dict__["__init__"], RecurrentModel._configure)  # type: ignore[method-assign]

    @checked_init
    def _configure(
        self,
        teacher_force: bool = False,
        decode: bool = False,
        output_length: int | None = None,
        return_sequences: bool | None = None,
        return_states: bool = False,
        go_backwards: bool = False,
        unroll: bool | int = False,
        stateful: bool = False,
        batch_size: int | None = None,
        zero_output_for_mask: bool = False,
        remat: bool | int = False,
        time_parallel: bool | str = "auto",
        newton_tol: float | None = None,
        newton_max_iter: int = 50,
        state_initializer: StateInitializers = None,
        name: str | None = None,
        seed: int | None = None,
    ) -> None:
        """Set the model's options (every keyword but the step's Tensors) and empty parts."""
        self.name = check_name(name or "recurrent_model", "RecurrentModel", "model name")
        self.options = LoopOptions(
            return_sequences,
            return_states,
            go_backwards,
            unroll,
            teacher_force,
            decode,
            output_length,
            stateful,
            batch_size,
            zero_output_for_mask,
            remat,
            time_parallel,
            newton_tol,
            newton_max_iter,
        )
        self.seed = int(secrets.randbits(31)) if seed is None else check_seed(f"RecurrentModel {self.name!r}", seed)
        self._state_initializer: StateInitializers = state_initializer
        self._lowered_cache: dict = {}
        self._call_layer = None
        self.graph: StepGraph | None = None
        self.state_specs: list[StateSpec] = []
        self.readout_spec: StateSpec | None = None
        self.param_specs: dict[str, ParamSpec] = {}
        self._weights = {}
        self._builder: Builder | None = None

    def __init__(
        self,
        input: Tensor,
        output: Tensors,
        initial_states: Tensors | None = None,
        final_states: Tensors | None = None,
        constants: Tensors | None = None,
        readout_input: Tensor | None = None,
        **options: Any,
    ) -> None:
        self._configure(**options)
        self._build(input, output, initial_states, final_states, constants, readout_input)

    __init__ = checked_init(__init__, _configure)  # a misspelled option names the closest valid keyword

    @classmethod
    def deferred(cls, builder: Builder, **options: Any) -> RecurrentModel:
        """A model whose step is built once the input size is known (:meth:`build`, or the first call).

        ``builder(input_dim) -> (input, output, initial_states, final_states, constants[, readout_input])``
        returns what :class:`RecurrentModel` takes; ``options`` are the model's keywords. A cell
        without ``input_dim`` makes its layer this way."""
        self = cls.__new__(cls)
        self._defer(builder, **options)
        return self

    def _defer(self, builder: Builder, **options: Any) -> None:
        """Configure ``self`` with ``options`` and leave building to ``builder`` (see :meth:`deferred`)."""
        self._configure(**options)
        self._builder = builder

    # -- building ------------------------------------------------------------------
    def _build(
        self,
        input: object,
        output: object,
        initial_states: object,
        final_states: object,
        constants: object,
        readout_input: Tensor | None = None,
    ) -> None:
        where = f"RecurrentModel {self.name!r}"
        if not isinstance(input, Tensor) or input.op != "input":
            raise RshopConfigError(f"{where}: expected input to be an rshop Input, received {input!r}.")
        states_in = _as_list(initial_states, "initial_states")
        states_out = _as_list(final_states, "final_states")
        outputs = _as_list(output, "output")
        if len(states_in) != len(states_out):
            raise RshopConfigError(
                f"{where}: expected as many final_states as initial_states ({len(states_in)}), "
                f"received {len(states_out)}."
            )
        if self.options.teacher_force and readout_input is None:
            raise RshopConfigError(
                f"{where}: expected readout_input with teacher_force=True, received none. Teacher forcing "
                "replaces the readout (the previous output) by the ground truth."
            )
        hidden_in, hidden_out = _readout_wiring(where, readout_input, outputs)
        self.options = _batch_of_inputs(
            where, [input, *states_in, *hidden_in, *_as_list(constants, "constants")], self.options
        )
        self.graph = trace(
            [input], states_in + hidden_in, _as_list(constants, "constants"), outputs, states_out + hidden_out, where
        )
        if readout_input is not None:
            self.readout_spec = StateSpec("readout", readout_input.shape, readout_input.dtype, initializers.Zeros())
        self.state_specs = self._state_specs_of(where, states_in)
        self.param_specs = _check_parts(where, self.graph, self.state_specs, self.readout_spec, self.options)
        check_param_count(where, self.param_specs.values())
        values: dict[str, np.ndarray] = {}  # weights carried over from nested models (their cells know them)
        for qual, (owner, local) in self.graph.meta.get("param_owners", {}).items():
            if hasattr(owner, "initial_value"):
                values[qual] = owner.initial_value(local)
        self._weights = None  # drawn when first needed (_weights): a wide cell builds at once
        self._carried_weights = {
            k: v.astype(self.param_specs[k].dtype) for k, v in values.items() if k in self.param_specs
        }

    def _state_specs_of(self, where: str, states_in: list[Tensor]) -> list[StateSpec]:
        """One StateSpec per state Input, named after it, with its ``state_initializer``."""
        given = self._state_initializer
        inits: Sequence[object] = given if isinstance(given, (list, tuple)) else [given or "zeros"] * len(states_in)
        if len(inits) > len(states_in):
            raise RshopConfigError(
                f"{where}: expected at most one state_initializer per state ({len(states_in)}), received "
                f"{len(inits)}. A shorter list initializes the first states; the rest start at zeros."
            )
        inits = list(inits) + ["zeros"] * (len(states_in) - len(inits))  # RecurrentShop's padding
        names = []
        for i, t in enumerate(states_in):
            if None in t.shape:
                raise RshopShapeError(
                    f"{where}, state #{i} {t.name!r}: expected a fully known shape, received {t.type.describe()}."
                )
            names.append(t.name if not t.name.startswith("input_") else f"state_{i}")
        return [
            StateSpec(n, t.shape, t.dtype, initializers.get(init, f"{where}, state {n!r}"))
            for n, t, init in zip(names, states_in, inits)
        ]

    @classmethod
    def _from_ir(
        cls,
        name: str,
        seed: int,
        options: LoopOptions,
        graph: StepGraph,
        states: Sequence[StateSpec],
        readout: StateSpec | None,
        params: dict[str, ParamSpec],
        weights: dict[str, np.ndarray] | None = None,
    ) -> RecurrentModel:
        """A model from already-verified IR parts (what loading builds); checks they agree.

        ``weights`` (already checked against ``params``) are used as they are; without them the
        initializers draw fresh ones from ``seed``."""
        self = cls.__new__(cls)
        where = f"RecurrentModel {check_name(name, 'RecurrentModel', 'model name')!r}"
        self.name, self.seed, self.options = name, seed, options
        self._state_initializer, self._lowered_cache, self._call_layer, self._builder = None, {}, None, None
        self.graph, self.state_specs, self.readout_spec = graph, list(states), readout
        hidden = [readout] if readout is not None else []
        if len(graph.states) != len(states) + len(hidden):
            raise RshopConfigError(
                f"{where}: expected {len(graph.states)} state specs for the graph's states, "
                f"received {len(states) + len(hidden)}."
            )
        for spec, i in zip(self.state_specs + hidden, graph.states):
            if graph.nodes[i].type != TensorType(spec.shape, spec.dtype, True):
                raise RshopShapeError(
                    f"{where}, state {spec.name!r}: expected the graph's "
                    f"{graph.nodes[i].type.describe()}, received {spec.shape} {spec.dtype}."
                )
        if readout is not None and graph.nodes[graph.outputs[0]].type != graph.nodes[graph.states[-1]].type:
            raise RshopShapeError(f"{where}: expected the readout to have the output's type.")
        if options.teacher_force and readout is None:
            raise RshopConfigError(f"{where}: expected a readout with teacher_force=True, received none.")
        want = _check_parts(where, graph, self.state_specs, readout, options)
        if sorted(want) != sorted(params) or any(params[k].shape != want[k].shape for k in want):
            raise RshopConfigError(
                f"{where}: expected the parameters {sorted(want)[:20]}, received {sorted(params)[:20]}."
            )
        self.param_specs = dict(params)
        x_float = graph.nodes[graph.x[0]].type.dtype in FLOAT_DTYPES
        _check_param_dtypes(where, self.param_specs, self.dtype, x_float)
        if weights is not None:
            self._weights = {k: np.array(weights[k]) for k in self.param_specs}
        else:
            self._weights, self._carried_weights = None, {}  # drawn from the seed when first needed
        return self

    @classmethod
    def from_keras(cls, step_model: Any, **kwargs: Any) -> RecurrentModel:
        """A RecurrentModel from a Keras functional model of one step (see docs/keras.md)."""
        from .convert.keras_step import from_keras_step

        return from_keras_step(step_model, **kwargs)

    def build(self, input_dim: int) -> RecurrentModel:
        """Build a model made from a cell without ``input_dim``; returns ``self``."""
        if self._builder is None:
            if self.input_shape[-1] != input_dim:
                raise RshopShapeError(
                    f"RecurrentModel {self.name!r}: expected input_dim {self.input_shape[-1]} (already "
                    f"built), received {input_dim}."
                )
            return self
        self._build(*self._builder(input_dim))  # (input, output, states, new states, constants[, readout])
        self._builder = None
        return self

    @property
    def built(self) -> bool:
        return self._builder is None

    def _require_built(self) -> StepGraph:
        """The step graph of a built model, or an RshopConfigError for one still waiting for its input size."""
        if self._builder is not None or self.graph is None:
            raise RshopConfigError(
                f"RecurrentModel {self.name!r}: expected a built model, received one made from a cell "
                "without input_dim. Pass input_dim= to the cell or call model.build(input_dim)."
            )
        return self.graph

    # -- facts -----------------------------------------------------------------------
    @property
    def dtype(self) -> str:
        """The float dtype the model computes in: x's, or (x int32 or bool) its parameters'."""
        g = self._require_built()
        return compute_dtype(g, self.param_specs.values(), self.state_specs)

    @property
    def input_dtype(self) -> str:
        """The dtype of x as declared by its Input: a float, or int32 / bool (token ids, a mask)."""
        g = self._require_built()
        return g.nodes[g.x[0]].type.dtype

    @property
    def input_shape(self) -> tuple:
        """Per-example, per-step shape of x (x itself is (batch, T, *input_shape))."""
        g = self._require_built()
        return g.nodes[g.x[0]].type.shape

    @property
    def num_states(self) -> int:
        """How many states a call takes as ``initial_state`` (a readout is not one of them)."""
        self._require_built()
        return super().num_states

    @property
    def state_shapes(self) -> list[tuple[int, ...]]:
        """The per-example shape of each state, in ``initial_state`` order (no batch axis)."""
        self._require_built()
        return super().state_shapes

    @property
    def params(self) -> dict:
        self._require_built()
        return dict(self.param_specs)

    def __repr__(self) -> str:
        if not self.built:
            return f"<RecurrentModel {self.name!r} (not built)>"
        return (
            f"<RecurrentModel {self.name!r} input {self.input_shape} states "
            f"{[s.name for s in self.state_specs]} params {len(self._weights)}>"
        )

    def summary(self) -> str:
        """The step graph in a readable SSA form, then states and parameters."""
        g = self._require_built()
        lines = [f"RecurrentModel {self.name!r}  options {self.options.to_json()}", str(g)]
        lines += [f"state {s.name}: {s.shape} {s.dtype} init={s.initializer!r}" for s in self.state_specs]
        lines += [
            f"param {p.name}: {p.shape} {p.dtype} init={p.initializer!r}{'' if p.trainable else ' (frozen)'}"
            for p in self.param_specs.values()
        ]
        return "\n".join(lines)

    def to_json(self) -> dict:
        """The model's IR as plain JSON values (weights excluded)."""
        g = self._require_built()
        return {
            "name": self.name,
            "seed": self.seed,
            "graph": g.to_json(),
            "states": [s.to_json() for s in self.state_specs],
            "readout": None if self.readout_spec is None else self.readout_spec.to_json(),
            "params": [p.to_json() for p in self.param_specs.values()],
            "options": self.options.to_json(),
        }

    # -- weights ---------------------------------------------------------------------
    @property
    def _weights(self) -> dict:
        """The current weights. A new model's are drawn from its seed (by parameter name, so the
        order of drawing never matters) on first use, not when it is built: building
        ``LSTMCell(2000)`` costs no orthogonal factorisation until something needs the values."""
        if self._weight_values is None and self.param_specs:
            self._weight_values = {
                p.name: self._carried_weights[p.name]
                if p.name in self._carried_weights
                else p.initializer(p.shape, p.dtype, initializers.rng_for(self.seed, p.name))
                for p in self.param_specs.values()
            }
        return {} if self._weight_values is None else self._weight_values

    @_weights.setter
    def _weights(self, values: dict[str, np.ndarray] | None) -> None:
        self._weight_values = values

    def get_weights(self) -> dict:
        """A copy of every parameter as a numpy array, keyed by qualified name."""
        self._require_built()
        return {k: v.copy() for k, v in self._weights.items()}

    def set_weights(self, weights: dict) -> None:
        """Replace every parameter; names, shapes and dtypes must match exactly."""
        self._require_built()
        self._weights = check_weights(f"RecurrentModel {self.name!r}", self.param_specs, weights)
        self._call_layer = None

    # -- running ---------------------------------------------------------------------
    def lower(
        self,
        engine: str | None = None,
        dtype: str | None = None,
        *,
        passes: Sequence[str] | None = None,
        fast_path: bool | str = True,
    ) -> Any:
        """The engine's native layer object, initialised from this model's weights
        (:meth:`Lowerable.lower <rshop_core.lowerable.Lowerable.lower>`)."""
        self._require_built()
        return super().lower(engine, dtype, passes=passes, fast_path=fast_path)

    # -- what the engines' shared runtime asks of every model kind (rshop_core.lowerable) ---------
    @property
    def leaves(self) -> tuple:
        return (self,)

    def output_shapes(self) -> list:
        g = self._require_built()
        return [tuple(g.nodes[i].type.shape) for i in g.outputs]

    def run(self, runner: Runner, P: dict, x: Any, states: list | None, kwargs: dict) -> tuple[list, list]:
        return runner.run_leaf(self, P, x, states, kwargs)

    def get_cell(self, name: str | None = None) -> ModelCell:
        """This model as a cell usable in another step graph or stack (see :mod:`rshop_core.cells.nested`)."""
        from .cells.nested import ModelCell

        if self._builder is not None:
            raise RshopConfigError(
                f"RecurrentModel {self.name!r}, get_cell: expected a built model, received one made from a cell "
                "without input_dim. Call model.build(input_dim) first, or give the cell input_dim."
            )
        return ModelCell(self, name)

    def clone(self, name: str, prefix: str | None = None, seed: int | None = None, **options: Any) -> RecurrentModel:
        """The same step as a new model: parameters renamed ``<prefix>/<name>``, options overridden.

        With ``seed`` the copy draws fresh weights; without, it starts from this model's weights.
        """
        from .replay import replay
        from .symbolic import Input

        g = self._require_built()
        env = {
            i: Input(g.nodes[i].type.shape, g.nodes[i].type.dtype, name=g.nodes[i].name) for i in (*g.x, *g.constants)
        }
        for i, s in zip(g.states, self.state_specs):  # state names (and learned-state parameters) prefixed too
            env[i] = Input(s.shape, s.dtype, name=f"{prefix}/{s.name}" if prefix else s.name)
        if self.readout_spec:
            env[g.states[-1]] = Input(self.readout_spec.shape, self.readout_spec.dtype, name="readout")
        rename = (lambda q: f"{prefix}/{q}") if prefix else None
        out = replay(g, env, rename=rename)
        n_user = len(self.state_specs)
        opts = {**self.options.to_json(), **options}
        model = RecurrentModel(
            input=env[g.x[0]],
            output=[out[i] for i in g.outputs],
            initial_states=[env[i] for i in g.states[:n_user]],
            final_states=[out[i] for i in g.final_states[:n_user]],
            constants=[env[i] for i in g.constants],
            readout_input=env[g.states[-1]] if self.readout_spec else None,
            state_initializer=[s.initializer for s in self.state_specs],
            name=name,
            seed=self.seed if seed is None else seed,
            **opts,
        )
        if seed is None:
            model._weights.update(
                {
                    (rename(k) if rename else k): v.copy()
                    for k, v in self._weights.items()
                    if (rename(k) if rename else k) in model._weights
                }
            )
        return model

    def __call__(self, x: Any, initial_state: Any = None, constants: Any = None, **kwargs: Any) -> Any:
        """Run on the active engine (builds a cell-made model from ``x``'s last axis); keywords as the layer's."""
        from .call_forms import refuse_symbolic

        refuse_symbolic(f"RecurrentModel {self.name!r}", "argument x", x)
        if self._builder is not None:
            self.build(int(x.shape[-1]))
        return super().__call__(x, initial_state=initial_state, constants=constants, **kwargs)
