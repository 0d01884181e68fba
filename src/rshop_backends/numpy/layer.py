"""The numpy engine's layer object: inference only, float32 or float64."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..lowered import Lowered
from . import loop

if TYPE_CHECKING:
    from collections.abc import Sequence

    from rshop_core.execution import Plan
    from rshop_core.lowerable import Lowerable

    from ..engine import EngineSpec


class NumpyLayer(Lowered):
    """The reference implementation of a lowered :class:`~rshop_core.RecurrentModel`."""

    engine = "numpy"
    _native = (np.ndarray,)

    def __init__(
        self,
        model: Lowerable,
        dtype: str,
        engine: EngineSpec,
        passes: Sequence[str] | None = None,
        fast_path: bool | str = True,
        **hooks: Any,
    ) -> None:
        super().__init__(model, dtype, engine, passes, fast_path, **hooks)
        self.params = self.initial_weights()

    def _describe(self, a: Any) -> tuple[tuple[int, ...], str]:  # a known shape
        return tuple(a.shape), a.dtype.name

    def _from_numpy(self, a: np.ndarray) -> np.ndarray:
        return np.asarray(a)

    def _broadcast(self, v: Any, batch: int | None, like: Any) -> np.ndarray:
        return np.broadcast_to(v, (batch,) + v.shape).copy()

    def _shift(self, seq: Any, first: Any, backwards: bool) -> np.ndarray:
        if backwards:
            return np.concatenate([seq[:, 1:], first[:, None]], axis=1)
        return np.concatenate([first[:, None], seq[:, :-1]], axis=1)

    def _lengths_to_mask(self, lengths: Any, steps: int | None, like: Any) -> np.ndarray:
        assert steps is not None, "numpy arrays have known shapes"
        return np.arange(steps)[None, :] < lengths[:, None]

    def _detach(self, v: Any) -> Any:
        return v

    def _sum_abs(self, v: Any) -> Any:
        return np.abs(v).sum()

    def _sum_square(self, v: Any) -> Any:
        return np.square(v).sum()

    def _norm(self, v: Any, axes: tuple[int, ...]) -> Any:
        return np.sqrt(np.sum(np.square(v), axis=axes, keepdims=True))

    def _clip(self, v: Any, lo: float, hi: float) -> Any:
        return np.clip(v, lo, hi)

    def _assign_params(self, values: dict[str, Any]) -> None:
        self.params = {**self.params, **values}

    def _flip_time(self, y: Any) -> np.ndarray:
        return np.ascontiguousarray(y[:, ::-1])

    def _concat_last(self, a: Any, b: Any) -> np.ndarray:
        return np.concatenate([a, b], axis=-1)

    def _param_dict(self) -> dict[str, Any]:
        return self.params

    def _loop(
        self, plan: Plan, P: dict[str, Any], xs: list[Any], states: list[Any], consts: list[Any], steps: int | None
    ) -> tuple[Sequence[Any], Sequence[Any]]:
        P, xs = self._prelude(plan, P, xs)

        def sequential() -> tuple[list[Any], list[Any]]:
            return loop.scan(self._step(plan), P, xs, states, consts, plan.options, steps)

        return self._parallel_or(plan, P, xs, states, consts, steps, sequential)

    def _read_weights(self) -> dict[str, Any]:
        return self.params

    def _write_weights(self, weights: dict[str, np.ndarray]) -> None:
        self.params = weights
