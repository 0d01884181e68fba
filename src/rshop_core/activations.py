"""Activations by Keras name: each maps to one op (``linear`` to none)."""

from __future__ import annotations

from collections.abc import Callable

from . import functional as F
from .errors import RshopConfigError
from .symbolic import Tensor

Activation = Callable[..., Tensor]  # Tensor -> Tensor (``name=`` optional); ``linear`` returns its argument

_ACTIVATIONS: dict[str, Activation] = {
    "linear": F.linear,
    "tanh": F.tanh,
    "sigmoid": F.sigmoid,
    "hard_sigmoid": F.hard_sigmoid,
    "relu": F.relu,
    "softmax": F.softmax,
    "softplus": F.softplus,
    "softsign": F.softsign,
    "elu": F.elu,
    "exponential": F.exp,
}


def get(name: object, where: str = "activation") -> Activation:
    """The activation function called ``name`` (None means ``linear``)."""
    if name is None:
        return F.linear
    if isinstance(name, str) and name in _ACTIVATIONS:
        return _ACTIVATIONS[name]
    raise RshopConfigError(f"{where}: expected an activation in {sorted(_ACTIVATIONS)}, received {name!r}.")


def names() -> list[str]:
    return sorted(_ACTIVATIONS)
