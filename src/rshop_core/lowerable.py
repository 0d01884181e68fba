"""The type every model kind implements: :class:`Lowerable`, and whole-sequence compositions of
models: :class:`Composition` (a plan with parts and a merge).

A model kind is anything an engine can lower and ``.rshop`` can store: a
:class:`~rshop_core.RecurrentModel` (one step graph run over time: a *leaf*), a
:class:`~rshop_core.Bidirectional` (two leaves over the same x, merged) or a
:class:`~rshop_core.SequenceStack` (models run one after another over whole sequences). What the
rest of rshop needs from a kind is declared here, so the engines' shared runtime
(``rshop_backends.lowered``), serialization, the Keras layer and the converters never ask which
kind they hold:

- ``KIND``: the document kind a ``.rshop`` file names (``serialization`` maps it to a reader and a writer);
- ``leaves``: the recurrent models a lowering plans and compiles (a leaf is its own only leaf);
- ``run(runner, P, x, states, kwargs)``: how one call combines its leaves' runs into the outputs
  and final states, in terms of the lowered layer's few public array operations
  (:class:`Runner`);
- ``output_shapes()``: the per-example shapes of what a call returns before the states.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from .options import LoopOptions


class Runner(Protocol):
    """What a :meth:`Lowerable.run` may ask of the lowered layer running it (engine arrays in and out)."""

    def run_leaf(self, model: Any, P: dict, x: Any, states: list | None, kwargs: dict) -> tuple[list, list]:
        """One leaf's run: ``(outputs, final states)``; ``states``: ``None`` or ``(info, array)`` pairs."""

    def flip_time(self, y: Any) -> Any:
        """``y`` (batch, T, ...) reversed along T."""

    def concat_last(self, a: Any, b: Any) -> Any:
        """``a`` and ``b`` joined along their last axis."""

    def check_state_count(self, model: Any, states: list | None) -> None:
        """Raise unless ``states`` is None or holds one entry per state of ``model``."""


class Lowerable(ABC):
    """A model kind: lowered by every engine, saved to ``.rshop``, run, explained.

    Subclasses set ``name``, ``seed``, ``options`` (:class:`~rshop_core.LoopOptions` of a call:
    ``return_sequences``, ``return_states``, ``stateful``, ``decode``...), ``param_specs``
    (qualified name -> :class:`~rshop_core.ParamSpec`), ``state_specs`` (the states a call takes
    and returns, in order), ``readout_spec`` (None unless the model feeds its output back),
    ``_lowered_cache`` (generated code, per engine) and ``_call_layer`` (what ``__call__`` runs).
    """

    KIND: ClassVar[str]

    name: str
    seed: int
    options: LoopOptions
    param_specs: dict
    state_specs: list
    readout_spec: Any
    _lowered_cache: dict
    _call_layer: Any

    if TYPE_CHECKING:  # every kind has one (an attribute or a property); declared for the type checker only

        @property
        def _weights(self) -> dict:
            """The current weights by qualified name (numpy arrays; what ``get_weights`` copies)."""
            ...

    # -- facts --------------------------------------------------------------------------
    @property
    @abstractmethod
    def dtype(self) -> str:
        """The dtype of the model's weights and values."""

    @property
    @abstractmethod
    def input_shape(self) -> tuple:
        """The per-example shape of one time step of x."""

    @property
    @abstractmethod
    def leaves(self) -> tuple:
        """The :class:`~rshop_core.RecurrentModel` s a lowering plans, in the order :meth:`run` runs them."""

    @abstractmethod
    def output_shapes(self) -> list:
        """Per-example shapes of the outputs a call returns (before the time axis and the states)."""

    @property
    def num_states(self) -> int:
        """How many states a call takes as ``initial_state`` (RecurrentShop's ``num_states``)."""
        return len(self.state_specs)

    @property
    def state_shapes(self) -> list[tuple[int, ...]]:
        """The per-example shape of each state, in ``initial_state`` order (no batch axis)."""
        return [tuple(s.shape) for s in self.state_specs]

    @property
    def returned_state_specs(self) -> list:
        """The states whose final values a call returns after its outputs."""
        return list(self.state_specs) if self.options.return_states else []

    # -- weights ------------------------------------------------------------------------
    @abstractmethod
    def get_weights(self) -> dict:
        """A copy of every parameter as a numpy array, keyed by qualified name."""

    @abstractmethod
    def set_weights(self, weights: dict) -> None:
        """Replace every parameter; names, shapes and dtypes must match exactly."""

    # -- running --------------------------------------------------------------------------
    @abstractmethod
    def run(self, runner: Runner, P: dict, x: Any, states: list | None, kwargs: dict) -> tuple[list, list]:
        """One call on a lowered layer: ``(outputs, final states returned)``, engine arrays.

        ``P``: the parameters by qualified name; ``states``: None (the defaults) or one
        ``(info, array)`` pair per entry of ``state_specs``; ``kwargs``: the call's keywords."""

    def lower(
        self,
        engine: str | None = None,
        dtype: str | None = None,
        *,
        passes: Sequence[str] | None = None,
        fast_path: bool | str = True,
    ) -> Any:
        """The engine's native layer object, initialised from this model's weights.

        ``engine=None`` means the engine chosen at import time (:func:`rshop_backends.backend`).
        ``dtype`` computes in another float dtype (e.g. ``"float64"`` on numpy).
        ``passes`` overrides the engine's optimisation pipeline (``()``: none; see
        :mod:`rshop_core.passes`); ``fast_path=False`` never uses a fused kernel,
        ``fast_path="require"`` fails unless one runs the whole loop.
        """
        from rshop_backends import lower  # the engine side is imported only when used

        return lower(self, engine, dtype, passes=passes, fast_path=fast_path)

    def explain(
        self,
        engine: str | None = None,
        dtype: str | None = None,
        *,
        passes: Sequence[str] | None = None,
        fast_path: bool | str = True,
        training: bool = False,
        masked: bool = False,
        teacher: bool = False,
        grad: bool = False,
    ) -> Any:
        """What ``self.lower(engine, ...)`` runs for a call with these flags (``grad``: a call being
        differentiated): the fused kernel or the generic loop (and why), and what each optimisation
        pass did, for the first leaf. Print it."""
        layer = self.lower(engine, dtype, passes=passes, fast_path=fast_path)
        return layer.explain(training=training, masked=masked, teacher=teacher, grad=grad)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the model and its weights to a ``.rshop`` file; returns the path."""
        from .serialization import save

        return save(self, path)

    def __call__(self, x: Any, initial_state: Any = None, constants: Any = None, **kwargs: Any) -> Any:
        """Run on the active engine; keywords as the lowered layer's."""
        from .call_forms import refuse_symbolic

        refuse_symbolic(f"{type(self).__name__} {self.name!r}", "argument x", x)
        if self._call_layer is None:
            self._call_layer = self.lower()
        return self._call_layer(x, initial_state=initial_state, constants=constants, **kwargs)


class Composition(Lowerable):
    """A whole-sequence composition: ``parts`` (each a :class:`Lowerable`) and how a call runs and
    merges them (:meth:`run`). It has no step graph and no weights of its own: its parameters,
    states and leaves are its parts', in order."""

    parts: tuple

    @property
    def leaves(self) -> tuple:
        return tuple(leaf for part in self.parts for leaf in part.leaves)

    @property
    def dtype(self) -> str:
        return self.parts[0].dtype

    @property
    def input_shape(self) -> tuple:
        return self.parts[0].input_shape
