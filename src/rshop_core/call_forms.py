"""The call forms RecurrentShop and Keras users bring, refused with the rshop form to use instead.

RecurrentShop (Keras 2) built whole networks by calling a recurrent model on a symbolic Keras
tensor: ``rnn(Input((7, 5)))``. rshop's models run on arrays; a graph over whole sequences is
built with Keras itself, by wrapping the model in ``rshop_backends.keras.RecurrentLayer``, and a
model used inside another step is a cell (``model.get_cell()``). :func:`refuse_symbolic` says so
wherever an array is expected (docs/decisions.md, "Symbolic whole-sequence calls").
"""

from __future__ import annotations

from .errors import RshopConfigError
from .symbolic import Tensor

__all__ = ["refuse_symbolic"]


def _symbolic_kind(x: object) -> str | None:
    """How a message names ``x`` when it is a symbolic tensor (an rshop or a Keras one), else None."""
    if isinstance(x, Tensor):
        return f"a symbolic rshop Tensor {x.type.describe()}"
    cls = type(x)
    if cls.__name__ == "KerasTensor" and cls.__module__.startswith("keras"):  # without importing keras
        return f"a symbolic keras.KerasTensor of shape {tuple(getattr(x, 'shape', ()))}"
    return None


def refuse_symbolic(where: str, what: str, x: object) -> None:
    """Raise :class:`RshopConfigError` when ``x`` (the argument ``what``) is a symbolic tensor."""
    kind = _symbolic_kind(x)
    if kind is None:
        return
    raise RshopConfigError(
        f"{where}, {what}: expected an array (a recurrent model runs on data), received {kind}. "
        "RecurrentShop's rnn(Input(...)) form builds a whole-sequence graph: in rshop wrap the model in "
        "rshop_backends.keras.RecurrentLayer(model) and call that on a keras.Input((T, features)); inside "
        "another step, use model.get_cell() and call the cell on the step's Inputs."
    )
