"""The jax engine's layer object: a plain Python object with a pure ``apply``.

``x``: (batch, T, *input_shape) jax array (tracers included), or (batch, *input_shape) with
``decode``. ``layer.params`` is a dict (a pytree) qualified name -> jax array (learned initial
states included, as ``initial_state/<state>``). ``layer.apply(params, x, initial_state=None,
constants=None, **kwargs)`` is pure (but for a stateful layer's carry and the numpy-drawn
dropout masks of eager training calls), so it composes with ``jax.jit``, ``jax.grad`` and
``jax.vmap``; a training call with dropout under ``jax.jit`` takes ``dropout_key=`` (a jax PRNG
key; without one it is refused, never frozen into the trace); ``layer(x, ...)`` is ``apply``
with ``layer.params``. Both run the engine-neutral call path of
:class:`~rshop_backends.lowered.Lowered` (shapes and dtypes are static under tracing) and one
``jax.jit`` of the loop cached per execution plan.

Frozen parameters (``trainable=False``) are passed through ``jax.lax.stop_gradient`` inside
``apply``: ``jax.grad`` w.r.t. ``params`` gives them exact zeros, so an optimizer step
leaves them unchanged. Their names are in ``layer.frozen``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np

from rshop_core.errors import RshopConfigError, RshopEngineError
from rshop_core.weights import check_weights

from ..lowered import Lowered
from . import loop

if TYPE_CHECKING:
    from collections.abc import Sequence

    from rshop_core.execution import Plan
    from rshop_core.lowerable import Lowerable
    from rshop_core.model import RecurrentModel

    from ..engine import EngineSpec


def _require_x64(model: Lowerable, dtype: str) -> None:
    if dtype == "float64" and not jax.config.jax_enable_x64:
        raise RshopEngineError(
            f"jax layer of RecurrentModel {model.name!r}, dtype: expected float32, or float64 with "
            "64-bit jax enabled, received dtype='float64' while jax_enable_x64 is off. Run "
            'jax.config.update("jax_enable_x64", True) at startup (before creating arrays), '
            "or lower with dtype='float32'."
        )


# jax's autodiff tracer classes (by name: their module is private and has moved between versions)
_AD_TRACERS = ("JVPTracer", "LinearizeTracer")


def _staged(args: Any) -> bool:
    """Whether a call is being staged out (jit, vmap, scan...): a traced value without a concrete
    value. ``jax.grad`` of an eager function traces every call again with concrete values, so
    numpy-drawn masks stay fresh there; under a staged trace they would become constants."""
    return any(
        isinstance(v, jax.core.Tracer) and getattr(v, "to_concrete_value", lambda: None)() is None
        for v in jax.tree_util.tree_leaves(args)
    )


def _explicit_axes(x: Any) -> list[str]:
    """The mesh axes of type ``Explicit`` that ``x`` is sharded over (jax's explicit sharding mode), if any."""
    try:
        sharding = jax.typeof(x).sharding
        mesh, spec = sharding.mesh, sharding.spec
        explicit = {a for a, t in zip(mesh.axis_names, mesh.axis_types) if t == jax.sharding.AxisType.Explicit}
    except (AttributeError, TypeError):  # no sharding in the type: nothing explicit
        return []
    named = [a for entry in spec if entry is not None for a in ((entry,) if isinstance(entry, str) else entry)]
    return [a for a in named if a in explicit]


class JaxLayer(Lowered):
    """A lowered :class:`~rshop_core.RecurrentModel` running on jax (float32, or float64 under x64)."""

    engine = "jax"
    _native = (jax.Array,)  # tracers are jax.Array instances too
    _native_names = "jax.Array"

    def __init__(
        self,
        model: Lowerable,
        dtype: str,
        engine: EngineSpec,
        passes: Sequence[str] | None = None,
        fast_path: bool | str = True,
        **hooks: Any,
    ) -> None:
        _require_x64(model, dtype)
        super().__init__(model, dtype, engine, passes, fast_path, **hooks)
        self.frozen = frozenset(k for k, p in model.param_specs.items() if not p.trainable)
        self.params = {k: jnp.asarray(v) for k, v in self.initial_weights().items()}
        self._jits: dict[int, Callable[..., Any]] = {}  # id of a plan -> jax.jit of the loop
        self._staged = False  # whether the call being run is staged out (jit...): see _draw_dropout

    def __repr__(self) -> str:
        return f"<JaxLayer of RecurrentModel {self.model.name!r} dtype {self.dtype} params {list(self.params)}>"

    # -- running -------------------------------------------------------------------
    def apply(
        self, params: dict[str, Any], x: Any, initial_state: Any = None, constants: Any = None, **kwargs: Any
    ) -> Any:
        """Pure forward pass with ``params`` (same names, shapes and dtype as ``self.params``).

        Takes the same keyword arguments as ``layer(...)`` (``mask``, ``sequence_lengths``,
        ``ground_truth``, ``initial_readout``, ``training``, ``output_length``).
        """
        self._check_params(params)
        return self._call(params, x, initial_state, constants, **kwargs)

    def _call(self, P: dict[str, Any], x: Any, initial_state: Any = None, constants: Any = None, **kwargs: Any) -> Any:
        # Frozen parameters stop gradients everywhere they are read (learned initial states too).
        if self.frozen:
            P = {k: jax.lax.stop_gradient(v) if k in self.frozen else v for k, v in P.items()}
        self._staged = _staged((P, x, initial_state, constants, kwargs))
        explicit = _explicit_axes(x) if self._staged else []
        if explicit:
            raise RshopConfigError(
                f"{self._where}, argument x: expected an array sharded over mesh axes of type Auto under jax.jit "
                f"(the compiler carries the batch sharding through the loop), received one sharded over the "
                f"Explicit axes {explicit} (jax's explicit sharding mode, jax.make_mesh's default), which the loop "
                "does not annotate. Build the mesh with Auto axes: jax.sharding.Mesh(devices, ('batch',)) or "
                "jax.make_mesh(shape, names, axis_types=(jax.sharding.AxisType.Auto,))."
            )
        return super()._call(P, x, initial_state, constants, **kwargs)

    def _loop(
        self, plan: Plan, P: dict[str, Any], xs: list[Any], states: list[Any], consts: list[Any], steps: int | None
    ) -> tuple[Sequence[Any], Sequence[Any]]:
        assert steps is not None, "shapes are known under jax tracing (T may be a symbol of jax.export)"
        symbolic = loop.symbolic(steps)  # jax.export with a dynamic T: no parallel loop, T stays a symbol
        args = (P, list(xs), list(states), list(consts))
        step, options = self._step(plan), plan.options

        def forward(P: Any, xs: Any, states: Any, consts: Any, steps: Any) -> Any:
            P, xs = self._prelude(plan, P, xs)

            def sequential() -> tuple[Sequence[Any], Sequence[Any]]:
                return loop.scan(step, P, xs, states, consts, options, steps)

            if symbolic:
                return sequential()
            return self._parallel_or(plan, P, xs, states, consts, steps, sequential)

        if any(isinstance(a, jax.core.Tracer) for a in jax.tree_util.tree_leaves(args)):
            # Already inside someone's jit / grad trace (a training step, Keras' fit): run inline.
            # A nested jax.jit adds nothing there, and a cached inner executable holding
            # closed-over constants broke Keras' retrace at a new batch size.
            return forward(*args, steps if symbolic else int(steps))
        fn = self._jits.get(id(plan))  # plans live in self._plans: their ids are stable
        if fn is None:
            fn = self._jits[id(plan)] = jax.jit(forward, static_argnums=4)
        return fn(*args, int(steps))

    def _differentiated(self, P: dict[str, Any]) -> bool:
        """True when a parameter is traced by jax's autodiff (grad, value_and_grad, vjp, jvp)."""
        return any(type(v).__name__ in _AD_TRACERS for v in P.values())

    def _check_params(self, params: dict[str, Any]) -> None:
        check_weights(
            f"jax layer of RecurrentModel {self.model.name!r}, argument params",
            self.model.param_specs,
            params,
            self.dtype,
            self._describe,
        )

    # -- Lowered hooks ---------------------------------------------------------------
    def _describe(self, a: Any) -> tuple[tuple[int, ...], str]:  # a known shape
        return tuple(a.shape), np.dtype(a.dtype).name

    def _from_numpy(self, a: np.ndarray) -> Any:
        return np.asarray(a)  # numpy: folded into a trace as a literal, never a hoisted argument

    def _flip_time(self, y: Any) -> Any:
        return jnp.flip(y, axis=1)

    def _to_host(self, a: Any) -> np.ndarray | None:
        return None if isinstance(a, jax.core.Tracer) else np.asarray(a)

    def _concat_last(self, a: Any, b: Any) -> Any:
        return jnp.concatenate([a, b], axis=-1)

    def _draw_dropout(self, shape: tuple[int, ...], rate: float, batch: int | None, key: Any, index: int) -> Any:
        """With ``dropout_key`` (a jax PRNG key) masks come from ``jax.random`` — what a jitted
        training step needs; without one, from numpy like on every engine."""
        if key is None:
            if self._staged:
                raise RshopConfigError(
                    f"{self._where}, argument dropout_key: expected a jax PRNG key for a training call with dropout "
                    "under jax.jit (or vmap, scan, any staged trace), received None. Masks drawn without a key "
                    "would be frozen into the traced function and repeat at every call. Pass "
                    "dropout_key=jax.random.key(seed) as an argument of the jitted function and split it for "
                    "every step (key, sub = jax.random.split(key)), as in Flax and equinox."
                )
            return super()._draw_dropout(shape, rate, batch, key, index)
        rank, replicas = self._replica  # set_replica: the global batch's masks, this replica's rows
        n = self._need_batch(batch, "dropout masks")
        keep = jax.random.bernoulli(jax.random.fold_in(key, index), 1.0 - rate, (n * replicas,) + tuple(shape))
        if replicas > 1:
            keep = keep[rank * n : (rank + 1) * n]
        return keep.astype(self.dtype) / (1.0 - rate)

    def _broadcast(self, v: Any, batch: int | None, like: Any) -> Any:
        if batch is None:  # shapes are static under jax tracing; kept for the hook's contract
            batch = like.shape[0]
        return jnp.broadcast_to(v, (batch,) + tuple(v.shape))

    def _shift(self, seq: Any, first: Any, backwards: bool) -> Any:
        if backwards:
            return jnp.concatenate([seq[:, 1:], first[:, None]], axis=1)
        return jnp.concatenate([first[:, None], seq[:, :-1]], axis=1)

    def _lengths_to_mask(self, lengths: Any, steps: int | None, like: Any) -> Any:
        return jnp.arange(steps)[None, :] < lengths[:, None]

    def _lengths_guard(self, model: RecurrentModel, lengths: Any, steps: int | None, like: Any) -> tuple[Any, Any]:
        """Under jit the values are unknown and nothing can raise: rows with a length outside
        [0, T] come out as NaN (outputs and final states), never silently clamped."""
        return lengths, (lengths < 0) | (lengths > steps)

    def _poison(self, v: Any, bad: Any) -> Any:
        return jnp.where(bad.reshape((-1,) + (1,) * (v.ndim - 1)), jnp.asarray(np.nan, v.dtype), v)

    def _detach(self, v: Any) -> Any:
        """The carried state of a stateful layer: a concrete array, never a tracer."""
        v = jax.lax.stop_gradient(v)
        if isinstance(v, jax.core.Tracer):
            raise RshopConfigError(
                f"{self._where}: expected a stateful layer to be called eagerly, received a call under jax.jit "
                "(a traced state cannot be kept between calls). Inside jit, pass initial_state= and use "
                "return_states=True to carry states yourself."
            )
        return v

    def _sum_abs(self, v: Any) -> Any:
        return jnp.sum(jnp.abs(v))

    def _sum_square(self, v: Any) -> Any:
        return jnp.sum(jnp.square(v))

    def _norm(self, v: Any, axes: tuple[int, ...]) -> Any:
        return jnp.sqrt(jnp.sum(jnp.square(v), axis=axes, keepdims=True))

    def _clip(self, v: Any, lo: float, hi: float) -> Any:
        return jnp.clip(v, lo, hi)

    def _assign_params(self, values: dict[str, Any]) -> None:
        self.params = {**self.params, **values}  # a new pytree: the old one is left as it was

    def _param_dict(self) -> dict[str, Any]:
        return self.params

    def _read_weights(self) -> dict[str, Any]:
        return self.params

    def _write_weights(self, weights: dict[str, np.ndarray]) -> None:
        self.params = {k: jnp.asarray(v) for k, v in weights.items()}
