"""Bidirectional: a model run forwards and a copy of it run backwards over the same x.

The backward copy has its own parameters (``backward/...``; the forward ones are
``forward/...`` and start from the wrapped model's weights) and ``go_backwards`` flipped.
Its output sequence is flipped back to time order before merging with ``merge_mode``:
``"concat"`` (last axis), ``"sum"``, ``"mul"``, ``"ave"`` or ``None`` (both, forward first).
With a ``mask`` or ``sequence_lengths`` the backward pass starts on the padding, which is
masked (states untouched), so each sequence is effectively reversed within its own length.
Returned states: the forward model's, then the backward model's.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import RshopConfigError
from .limits import MAX_NAME, check_name
from .lowerable import Composition, Runner
from .model import RecurrentModel
from .weights import check_weights

MERGE_MODES = ("concat", "sum", "mul", "ave", None)


class Bidirectional(Composition):
    """A composition of two leaves over the same x: ``parts`` = (forward, backward)."""

    KIND = "Bidirectional"

    forward: RecurrentModel
    backward: RecurrentModel
    merge_mode: str | None
    _weights: dict[str, np.ndarray]

    def __init__(
        self, model: RecurrentModel, merge_mode: str | None = "concat", name: str | None = None, seed: int | None = None
    ) -> None:
        if not isinstance(model, RecurrentModel):
            raise RshopConfigError(f"Bidirectional: expected a RecurrentModel, received {model!r}.")
        if merge_mode not in MERGE_MODES:
            raise RshopConfigError(
                f"Bidirectional: expected merge_mode in {list(MERGE_MODES)}, received {merge_mode!r}."
            )
        model._require_built()
        o = model.options
        for flag in ("decode", "teacher_force", "stateful"):
            if getattr(o, flag):
                raise RshopConfigError(
                    f"Bidirectional: expected a model without {flag}=True, received one. Wrap the model without it."
                )
        self.name = check_name(name or f"bidirectional_{model.name}"[:MAX_NAME], "Bidirectional", "model name")
        self.merge_mode = merge_mode
        self.forward = model.clone("forward", prefix="forward")
        self.backward = model.clone(
            "backward",
            prefix="backward",
            seed=model.seed + 1 if seed is None else seed,
            go_backwards=not o.go_backwards,
        )
        self.parts = (self.forward, self.backward)
        self.options = o
        self.seed = model.seed
        self.readout_spec = None
        self.state_specs = self.forward.state_specs + self.backward.state_specs
        self.param_specs = {**self.forward.param_specs, **self.backward.param_specs}
        self._weights = {**self.forward._weights, **self.backward._weights}
        self._lowered_cache: dict = {}
        self._call_layer = None

    @classmethod
    def _from_parts(
        cls, forward: RecurrentModel, backward: RecurrentModel, merge_mode: str | None, name: str
    ) -> Bidirectional:
        """A Bidirectional from its two directions (what loading builds); checks they pair up."""
        if (
            forward.input_shape != backward.input_shape
            or forward.dtype != backward.dtype
            or forward.options.go_backwards == backward.options.go_backwards
            or set(forward.param_specs) & set(backward.param_specs)
        ):
            raise RshopConfigError(
                f"Bidirectional {name!r}: expected a forward and a backward model of one input, "
                "opposite directions and distinct parameters."
            )
        self = cls.__new__(cls)
        self.name, self.merge_mode, self.forward, self.backward = name, merge_mode, forward, backward
        self.parts = (forward, backward)
        self.options, self.seed, self.readout_spec = forward.options, forward.seed, None
        self.state_specs = forward.state_specs + backward.state_specs
        self.param_specs = {**forward.param_specs, **backward.param_specs}
        self._weights = {**forward._weights, **backward._weights}
        self._lowered_cache, self._call_layer = {}, None
        return self

    def __repr__(self) -> str:
        return f"<Bidirectional {self.name!r} of {self.forward.input_shape} merge {self.merge_mode!r}>"

    def get_weights(self) -> dict:
        return {k: v.copy() for k, v in self._weights.items()}

    def set_weights(self, weights: dict) -> None:
        self._weights = check_weights(f"Bidirectional {self.name!r}", self.param_specs, weights)
        for part in (self.forward, self.backward):
            part._weights = {k: self._weights[k] for k in part.param_specs}
        self._call_layer = None

    # -- a plan with parts and a merge (rshop_core.lowerable) ---------------------------------
    def output_shapes(self) -> list:
        outs = self.forward.output_shapes()
        if self.merge_mode is None:
            return outs + outs
        if self.merge_mode == "concat":
            return [s[:-1] + (None if s[-1] is None else 2 * s[-1],) for s in outs]
        return outs

    def run(self, runner: Runner, P: dict, x: Any, states: list | None, kwargs: dict) -> tuple[list, list]:
        """The forward model, then the backward copy (states split between them); the backward
        outputs, in processing order, go back to time order before ``merge_mode`` joins them."""
        runner.check_state_count(self, states)
        n = len(self.forward.state_specs)
        halves = (None, None) if states is None else (states[:n], states[n:])
        (yf, sf), (yb, sb) = [part.run(runner, P, x, s, kwargs) for part, s in zip(self.parts, halves)]
        if self.options.return_sequences:
            yb = [runner.flip_time(y) for y in yb]
        mode = self.merge_mode
        if mode is None:
            return yf + yb, sf + sb
        merge = {
            "concat": runner.concat_last,
            "sum": lambda a, b: a + b,
            "mul": lambda a, b: a * b,
            "ave": lambda a, b: (a + b) * 0.5,
        }[mode]
        return [merge(a, b) for a, b in zip(yf, yb)], sf + sb
