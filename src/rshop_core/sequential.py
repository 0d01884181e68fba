"""RecurrentSequential: a stack of cells (and plain layers) run as one recurrent step.

    seq = RecurrentSequential(return_sequences=True)
    seq.add(LSTMCell(32, input_dim=8))
    seq.add(Dropout(0.1))               # a plain layer acts on the running output
    seq.add(LSTMCell(32))
    y = seq.lower("torch")(x)           # (batch, T, 32)

At each step the running value goes through the items in order; each cell reads and writes
its own states. ``state_sync=True`` gives every cell ONE shared set of states instead: cell i
reads the states cell i-1 just wrote (all cells need the same state shapes), so three
LSTMCells expose two states, not six. ``readout`` feeds the previous output back, combined
with the input before the first item: ``True``/``'add'`` (x + r), ``'mul'``, ``'avg'``,
``'max'`` or ``'readout_only'`` (r replaces x); ``readout_activation`` is applied to r first.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from . import activations
from . import functional as F
from .cells.base import Cell
from .errors import RshopConfigError, RshopShapeError
from .graph import StepGraph
from .layers.base import Layer
from .model import RecurrentModel
from .symbolic import Input, Tensor
from .types import Shape

if TYPE_CHECKING:
    from .cells.nested import ModelCell

READOUT_MODES = (True, "add", "mul", "avg", "max", "readout_only")


class RecurrentSequential(RecurrentModel):
    """A RecurrentModel built from a stack; every RecurrentModel option applies.

    Items: cells (``Cell``, including ``model.get_cell()``), RecurrentModels (nested through
    their ``get_cell()``) and plain layers (``Dense``, ``Activation``, ``Dropout``, ...). The
    model is built when the input size is known: from the first cell's ``input_dim``, by
    ``build(input_dim)``, or on first use.
    """

    def __init__(
        self,
        state_sync: bool = False,
        readout: bool | str = False,
        readout_activation: str | None = "linear",
        name: str | None = None,
        **options: Any,
    ) -> None:
        if readout is not False and readout not in READOUT_MODES:
            raise RshopConfigError(
                f"RecurrentSequential: expected readout in {[False, *READOUT_MODES]}, received {readout!r}."
            )
        self.items: list[Callable[..., Any]] = []  # cells and callable layers
        self.state_sync = bool(state_sync)
        self.readout: bool | str = readout
        self._readout_activation = activations.get(readout_activation, "RecurrentSequential readout_activation")
        self._defer(self._compose, name=name or "recurrent_sequential", **options)  # built from input_dim

    def add(self, item: Layer | RecurrentModel) -> RecurrentSequential:
        """Append a cell, a RecurrentModel or a plain layer; returns ``self``."""
        if self.built:
            raise RshopConfigError(
                f"RecurrentSequential {self.name!r}: expected add() before the stack is built, "
                "received a call after it."
            )
        if isinstance(item, RecurrentModel):
            item = item.get_cell()
        if not isinstance(item, (Cell, Layer)) or not callable(item):
            raise RshopConfigError(
                f"RecurrentSequential {self.name!r}: expected a cell, a RecurrentModel or a layer, received {item!r}."
            )
        self.items.append(item)
        return self

    @property
    def cells(self) -> list[Cell]:
        return [c for c in self.items if isinstance(c, Cell)]

    def state_layout(self) -> list[tuple[str, Shape]]:
        """``(name, shape)`` of each state the stack exposes (before any readout)."""
        cells = self.cells
        if not cells:
            raise RshopConfigError(f"RecurrentSequential {self.name!r}: expected at least one cell, received none.")
        if self.state_sync:
            shapes = cells[0].state_shapes()
            for c in cells[1:]:
                if c.state_shapes() != shapes:
                    raise RshopShapeError(
                        f"RecurrentSequential {self.name!r} (state_sync): expected every cell to have the states "
                        f"{shapes} of {cells[0].name!r}, received {c.state_shapes()} from {c.name!r}."
                    )
            return list(zip(cells[0].state_names, shapes))
        out: list[tuple[str, Shape]] = []
        taken: set[str] = set()
        for c in cells:
            for n, s in zip(c.state_names, c.state_shapes()):
                name = f"{c.name}/{n}" if "/" not in n else n
                while name in taken:
                    name += "_"
                taken.add(name)
                out.append((name, s))
        return out

    def _input_dim(self) -> int | None:
        first = self.cells[0] if self.cells else None
        return getattr(first, "input_dim", None)

    def _run_items(self, x: Tensor, states: Sequence[Tensor], readout: Tensor | None) -> tuple[Tensor, list[Tensor]]:
        value = x
        if readout is not None:
            r = self._readout_activation(readout)
            mode = "add" if self.readout is True else str(self.readout)  # a mode name: False has no readout
            value = {
                "add": lambda: F.add(x, r),
                "mul": lambda: F.multiply(x, r),
                "avg": lambda: F.divide(F.add(x, r), 2.0),
                "max": lambda: F.maximum(x, r),
                "readout_only": lambda: r,
            }[mode]()
        new_states: list[Tensor] = []
        k = 0
        current = list(states)
        for i, item in enumerate(self.items):
            if not isinstance(item, Cell):
                value = item(value)
                continue
            declared = getattr(item, "input_dim", None)
            if declared is not None and value.shape[-1] != declared:
                came = "the stack's input x" if i == 0 else f"the output of item #{i - 1}"
                raise RshopShapeError(
                    f"RecurrentSequential {self.name!r}, item #{i} {type(item).__name__} {item.name!r}: expected its "
                    f"input_dim {declared} to be the size reaching it, received {value.shape[-1]} ({came}). "
                    "Drop input_dim= from the cell (it is inferred) or make the sizes agree."
                )
            if self.state_sync:
                value, current = item(value, current)
            else:
                n = len(item.state_shapes())
                value, new = item(value, states[k : k + n])
                new_states += new
                k += n
        return value, (current if self.state_sync else new_states)

    def _compose(self, input_dim: int) -> tuple[Tensor, Tensor, list[Tensor], list[Tensor], None, Tensor | None]:
        x = Input((input_dim,), name="x")
        states = [Input(shape, name=name) for name, shape in self.state_layout()]
        readout = None
        if self.readout is not False:
            if self.readout == "readout_only":  # r is shaped like the output: find it with a dry run
                probe, _ = self._run_items(x, states, None)
                readout = Input(probe.shape, probe.dtype, name="readout")
            else:
                readout = Input((input_dim,), name="readout")
        y, new = self._run_items(x, states, readout)
        return x, y, states, new, None, readout

    def build(self, input_dim: int | None = None) -> RecurrentSequential:
        """Build the stack for ``input_dim`` (default: the first cell's ``input_dim``)."""
        input_dim = input_dim or self._input_dim()
        if input_dim is None:
            raise RshopConfigError(
                f"RecurrentSequential {self.name!r}: expected input_dim (build(input_dim) or the "
                "first cell's input_dim), received None."
            )
        super().build(input_dim)
        return self

    def _require_built(self) -> StepGraph:
        if not self.built and self._input_dim() is not None:
            self.build()
        return super()._require_built()

    def get_cell(self, name: str | None = None) -> ModelCell:
        """The stack as a cell; builds it first when the first cell knows its input_dim."""
        self._require_built()
        return super().get_cell(name)
