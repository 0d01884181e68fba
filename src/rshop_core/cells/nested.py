"""Nesting: a RecurrentModel (or RecurrentSequential) used as a cell of another step.

``model.get_cell()`` returns a :class:`ModelCell`. Calling it inside another step graph
inlines the model's step: its parameters become the parent's, named
``<cell name>/<their qualified name>`` and starting from the nested model's current
weights; its states (a readout included) become states of the parent, named
``<cell name>/<state>``. Nesting goes to any depth.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, overload

import numpy as np

from ..errors import RshopConfigError, RshopShapeError
from ..replay import replay
from ..symbolic import Tensor
from ..types import Shape, TensorType
from .base import Cell, split_list_form

if TYPE_CHECKING:
    from ..initializers import Initializer
    from ..model import RecurrentModel


class ModelCell(Cell):
    """A built RecurrentModel as a cell: ``cell(x, states, constants=None) -> (output, new_states)``."""

    def __init__(self, model: RecurrentModel, name: str | None = None) -> None:
        g = model._require_built()
        super().__init__(None, model.input_shape[-1] if model.input_shape else None, name or model.name)
        self.model = model
        names = [s.name for s in model.state_specs] + (["readout"] if model.readout_spec else [])
        self.state_names = tuple(f"{self.name}/{n}" for n in names)
        self._state_shapes = [g.nodes[i].type.shape for i in g.states]
        self._initializers: list[Initializer | str] = [s.initializer for s in model.state_specs]
        self._initializers += ["zeros"] if model.readout_spec else []

    def _checked_sizes(self, units: int | None, input_dim: int | None) -> tuple[None, int | None]:
        """No units: the nested model's sizes are its graph's, checked when it was built."""
        return None, input_dim

    def state_shapes(self) -> list[Shape]:
        return list(self._state_shapes)

    def initial_value(self, local: str) -> np.ndarray:
        """The nested model's current value of its parameter ``local`` (a qualified name)."""
        return self.model._weights[local]

    @overload
    def __call__(
        self, x: Tensor, states: Sequence[Tensor], constants: Sequence[Tensor] | None = None
    ) -> tuple[Tensor, list[Tensor]]: ...

    @overload
    def __call__(
        self, x: Sequence[Tensor], states: None = None, constants: Sequence[Tensor] | None = None
    ) -> list[Tensor]: ...

    def __call__(
        self,
        x: Tensor | Sequence[Tensor],
        states: Sequence[Tensor] | None = None,
        constants: Sequence[Tensor] | None = None,
    ) -> tuple[Tensor, list[Tensor]] | list[Tensor]:
        """``cell(x, states, constants=None) -> (y, new_states)``, or the list form
        ``cell([x, *states], constants=None) -> [y, *new_states]``."""
        where = f"cell {self.name!r} (nested RecurrentModel {self.model.name!r})"
        if states is None:
            x_t, listed = split_list_form(where, x, self.num_states)
            y, new = self._nested_call(where, x_t, listed, constants)
            return [y, *new]
        return self._nested_call(where, x, states, constants)

    def _nested_call(
        self, where: str, x: object, states: Sequence[Tensor], constants: Sequence[Tensor] | None
    ) -> tuple[Tensor, list[Tensor]]:
        g = self.model._require_built()
        want = g.nodes[g.x[0]].type
        if not isinstance(x, Tensor) or x.type != want:
            got = x.type.describe() if isinstance(x, Tensor) else type(x).__name__
            raise RshopShapeError(f"{where}: expected x of type {want.describe()}, received {got}.")
        states = list(states)
        if len(states) != len(g.states):
            raise RshopConfigError(
                f"{where}: expected {len(g.states)} states {list(self.state_names)}, received {len(states)}."
            )
        for i, (s, sid) in enumerate(zip(states, g.states)):
            if not isinstance(s, Tensor) or s.type != g.nodes[sid].type:
                got = s.type.describe() if isinstance(s, Tensor) else type(s).__name__
                raise RshopShapeError(
                    f"{where}, state #{i} {self.state_names[i]!r}: expected "
                    f"{g.nodes[sid].type.describe()}, received {got}."
                )
        constants = list(constants or [])
        if len(constants) != len(g.constants):
            raise RshopConfigError(f"{where}: expected {len(g.constants)} constant(s), received {len(constants)}.")
        env = {g.x[0]: x, **dict(zip(g.states, states)), **dict(zip(g.constants, constants))}
        out = replay(g, env, lambda n, args: self._param(n.attrs["name"]) if n.op == "param" else None)
        return out[g.outputs[0]], [out[i] for i in g.final_states]

    def _param(self, qualified: str) -> Tensor:
        if qualified not in self._weights:  # one symbolic parameter per nested parameter, shared by calls
            spec = self.model._require_built().params[qualified]
            self._weights[qualified] = Tensor(
                "param",
                (),
                {},
                TensorType(spec.shape, spec.dtype, False),
                f"{self.name}/{qualified}",
                param=(
                    self,
                    qualified,
                    {
                        "shape": spec.shape,
                        "dtype": spec.dtype,
                        "initializer": spec.initializer,
                        "trainable": spec.trainable,
                        "regularizer": spec.regularizer,
                        "constraint": spec.constraint,
                    },
                ),
            )
        return self._weights[qualified]

    def get_layer(self, **options: Any) -> RecurrentModel:
        options.setdefault("state_initializer", self._initializers)
        return super().get_layer(**options)
