"""Dense and Activation."""

from __future__ import annotations

from .. import activations, initializers
from .. import functional as F
from ..errors import RshopConfigError, RshopShapeError
from ..symbolic import Tensor
from .base import Layer


def _check_tensor(layer, x):
    if not isinstance(x, Tensor):
        raise RshopConfigError(
            f"layer {layer.name!r}: expected an rshop Tensor, received {type(x).__name__}.")


class Dense(Layer):
    """``activation(x @ kernel + bias)``; kernel (in, units), bias (units,)."""

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", name=None):
        super().__init__(name)
        if not isinstance(units, int) or isinstance(units, bool) or units <= 0:
            raise RshopConfigError(f"Dense {self.name!r}: expected units > 0, received {units!r}.")
        self.units, self.use_bias = units, bool(use_bias)
        self.activation = activations.get(activation, f"Dense {self.name!r} activation")
        self.kernel_initializer = initializers.get(kernel_initializer, f"Dense {self.name!r} kernel_initializer")
        self.bias_initializer = initializers.get(bias_initializer, f"Dense {self.name!r} bias_initializer")

    def __call__(self, x):
        _check_tensor(self, x)
        if x.type.rank < 1 or x.shape[-1] is None:
            raise RshopShapeError(
                f"layer {self.name!r}: expected an input with a known last axis, received {x.type.describe()}.")
        k = self.add_weight("kernel", (x.shape[-1], self.units), self.kernel_initializer, x.dtype)
        y = F.matmul(x, k, name=f"{self.name}/matmul")
        if self.use_bias:
            y = F.add(y, self.add_weight("bias", (self.units,), self.bias_initializer, x.dtype),
                      name=f"{self.name}/bias_add")
        return self.activation(y)


class Activation(Layer):
    """Applies a named activation (``'tanh'``, ``'sigmoid'``, ...)."""

    def __init__(self, activation, name=None):
        super().__init__(name)
        self.fn = activations.get(activation, f"Activation {self.name!r}")

    def __call__(self, x):
        _check_tensor(self, x)
        return self.fn(x)
