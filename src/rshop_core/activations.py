"""Activations by Keras name: each maps to one op (``linear`` to none)."""

from __future__ import annotations

from . import functional as F
from .errors import RshopConfigError

_ACTIVATIONS = {
    "linear": F.linear, "tanh": F.tanh, "sigmoid": F.sigmoid, "hard_sigmoid": F.hard_sigmoid,
    "relu": F.relu, "softmax": F.softmax, "softplus": F.softplus, "softsign": F.softsign,
    "elu": F.elu, "exponential": F.exp,
}


def get(name, where: str = "activation"):
    """The activation function called ``name`` (None means ``linear``)."""
    if name is None:
        return F.linear
    if isinstance(name, str) and name in _ACTIVATIONS:
        return _ACTIVATIONS[name]
    raise RshopConfigError(
        f"{where}: expected an activation in {sorted(_ACTIVATIONS)}, received {name!r}.")


def names() -> list:
    return sorted(_ACTIVATIONS)
