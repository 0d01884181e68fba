"""SequenceStack: models run one after another over whole sequences (layer i+1 reads layer i's
first output, all time steps of it).

This is what a stack of *bidirectional* layers is (each layer's merged outputs, for all time
steps, feed the next), which one RecurrentSequential step cannot express. It is a
:class:`~rshop_core.lowerable.Composition`: it has no step graph and no weights of its own, it
lowers to one layer object on every engine, saves to ``.rshop`` (document kind ``SequenceStack``)
and loads back. A call returns ``(y, *states)``: the last layer's output(s), then the final states
of every layer whose ``return_states`` is set, layer by layer; ``initial_state=`` takes the states
of every layer, in that order. Its parameters are named ``layer_<i>/<the layer's name>``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from .errors import RshopConfigError
from .lowerable import Composition, Lowerable, Runner
from .model import check_weights


class SequenceStack(Composition):
    KIND = "SequenceStack"

    def __init__(self, layers: Iterable[Lowerable], name: str = "sequence_stack") -> None:
        self.layers, self.name = list(layers), name
        if not self.layers:
            raise RshopConfigError("SequenceStack: expected at least one layer, received none.")
        for i, layer in enumerate(self.layers):
            if not isinstance(layer, Lowerable):
                raise RshopConfigError(
                    f"SequenceStack {name!r}, layer {i}: expected an rshop model (RecurrentModel, "
                    f"Bidirectional or SequenceStack), received {layer!r}."
                )
            if any(leaf.options.stateful for leaf in layer.leaves):
                raise RshopConfigError(
                    f"SequenceStack {name!r}, layer {i}: expected a model without stateful=True, "
                    f"received {layer.name!r} with it. Carry states yourself: return_states=True "
                    "and initial_state=."
                )
        self.parts = tuple(self.layers)
        self.options = self.layers[-1].options  # what a call's outputs are: the last layer's
        self.seed = self.layers[0].seed
        self.readout_spec = None
        self.state_specs = [s for layer in self.layers for s in layer.state_specs]
        self.param_specs = {
            f"layer_{i}/{k}": spec for i, layer in enumerate(self.layers) for k, spec in layer.param_specs.items()
        }
        self._lowered_cache: dict = {}
        self._call_layer = None

    def __repr__(self) -> str:
        return f"<SequenceStack {self.name!r} of {len(self.layers)} layers>"

    # -- weights ----------------------------------------------------------------------------
    @property
    def _weights(self) -> dict[str, np.ndarray]:
        return {f"layer_{i}/{k}": v for i, layer in enumerate(self.layers) for k, v in layer._weights.items()}

    def get_weights(self) -> dict:
        return {f"layer_{i}/{k}": v for i, layer in enumerate(self.layers) for k, v in layer.get_weights().items()}

    def set_weights(self, weights: dict) -> None:
        extra = [k for k in weights if k not in self.param_specs] if isinstance(weights, dict) else []
        if extra:
            raise RshopConfigError(f"SequenceStack {self.name!r}: unexpected weights {extra}.")
        weights = check_weights(f"SequenceStack {self.name!r}", self.param_specs, weights)
        for i, layer in enumerate(self.layers):
            prefix = f"layer_{i}/"
            layer.set_weights({k[len(prefix) :]: v for k, v in weights.items() if k.startswith(prefix)})
        self._call_layer = None

    # -- a plan with parts and a merge (rshop_core.lowerable) -------------------------------------
    @property
    def returned_state_specs(self) -> list:
        return [s for layer in self.layers for s in layer.returned_state_specs]

    def output_shapes(self) -> list:
        return self.layers[-1].output_shapes()

    def run(self, runner: Runner, P: dict, x: Any, states: list | None, kwargs: dict) -> tuple[list, list]:
        """Each layer on the previous one's first output; its parameters are ``P``'s ``layer_<i>/`` ones."""
        _, consts = kwargs["constants"]
        if consts:
            raise RshopConfigError(f"SequenceStack {self.name!r}: expected no constants, received some.")
        runner.check_state_count(self, states)
        returned: list = []
        ys: list = []
        k = 0
        for i, layer in enumerate(self.layers):
            n = len(layer.state_specs)
            init = None if states is None else states[k : k + n]
            k += n
            prefix = f"layer_{i}/"
            own = {q[len(prefix) :]: v for q, v in P.items() if q.startswith(prefix)}
            ys, finals = layer.run(runner, own, x, init, kwargs)
            if layer.returned_state_specs:
                returned.extend(finals)
            x = ys[0]
        return ys, returned
