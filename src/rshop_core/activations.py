"""Activations by Keras name: most map to one op (``linear`` to none); ``mish`` and ``hard_silu`` /
``hard_swish`` are short compositions (see docs/ir.md)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

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
    "gelu": F.gelu,  # exact, Keras' default (approximate=False)
    "gelu_tanh": partial(F.gelu, approximate=True),  # torch's approximate="tanh"; keras gelu(approximate=True)
    "silu": F.silu,
    "swish": F.silu,
    "leaky_relu": F.leaky_relu,  # Keras 3's negative_slope 0.2
    "selu": F.selu,
    "mish": F.mish,
    "hard_silu": F.hard_silu,
    "hard_swish": F.hard_silu,
    "log_softmax": F.log_softmax,
    "relu6": F.relu6,
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
