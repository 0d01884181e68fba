"""Dense and Activation."""

from __future__ import annotations

from .. import activations, constraints, initializers, regularizers
from .. import functional as F
from ..constraints import ConstraintLike
from ..errors import RshopConfigError, RshopDTypeError, RshopShapeError
from ..initializers import InitializerLike
from ..regularizers import RegularizerLike
from ..symbolic import Tensor
from .base import Layer


def _check_tensor(layer: Layer, x: object) -> None:
    if not isinstance(x, Tensor):
        raise RshopConfigError(f"layer {layer.name!r}: expected an rshop Tensor, received {type(x).__name__}.")


class Dense(Layer):
    """``activation(x @ kernel + bias)``; kernel (in, units), bias (units,)."""

    def __init__(
        self,
        units: int,
        activation: str | None = None,
        use_bias: bool = True,
        kernel_initializer: InitializerLike = "glorot_uniform",
        bias_initializer: InitializerLike = "zeros",
        kernel_regularizer: RegularizerLike = None,
        bias_regularizer: RegularizerLike = None,
        kernel_constraint: ConstraintLike = None,
        bias_constraint: ConstraintLike = None,
        name: str | None = None,
    ) -> None:
        super().__init__(name)
        if not isinstance(units, int) or isinstance(units, bool) or units <= 0:
            raise RshopConfigError(f"Dense {self.name!r}: expected units > 0, received {units!r}.")
        self.units, self.use_bias = units, bool(use_bias)
        self.activation = activations.get(activation, f"Dense {self.name!r} activation")
        self.kernel_initializer = initializers.get(kernel_initializer, f"Dense {self.name!r} kernel_initializer")
        self.bias_initializer = initializers.get(bias_initializer, f"Dense {self.name!r} bias_initializer")
        self.kernel_regularizer = regularizers.get(kernel_regularizer, f"Dense {self.name!r} kernel_regularizer")
        self.bias_regularizer = regularizers.get(bias_regularizer, f"Dense {self.name!r} bias_regularizer")
        self.kernel_constraint = constraints.get(kernel_constraint, f"Dense {self.name!r} kernel_constraint")
        self.bias_constraint = constraints.get(bias_constraint, f"Dense {self.name!r} bias_constraint")

    def __call__(self, x: Tensor) -> Tensor:
        _check_tensor(self, x)
        if x.type.rank < 1 or x.shape[-1] is None:
            raise RshopShapeError(
                f"layer {self.name!r}: expected an input with a known last axis, received {x.type.describe()}."
            )
        if x.dtype not in ("float32", "float64"):
            raise RshopDTypeError(
                f"layer {self.name!r}: expected a float input, received {x.type.describe()}. Embed token ids with "
                f"layers.Embedding(vocabulary, size)(ids), or use their values: F.cast(x, 'float32')."
            )
        k = self.add_weight(
            "kernel",
            (x.shape[-1], self.units),
            self.kernel_initializer,
            x.dtype,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        y = F.matmul(x, k, name=f"{self.name}/matmul")
        if self.use_bias:
            b = self.add_weight(
                "bias",
                (self.units,),
                self.bias_initializer,
                x.dtype,
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )
            y = F.add(y, b, name=f"{self.name}/bias_add")
        return self.activation(y)


class Dropout(Layer):
    """Variational dropout of ``rate``: one mask per sequence during training calls, identity otherwise."""

    def __init__(self, rate: float, name: str | None = None) -> None:
        super().__init__(name)
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= rate < 1.0:
            raise RshopConfigError(f"Dropout {self.name!r}: expected a rate in [0, 1), received {rate!r}.")
        self.rate = float(rate)

    def __call__(self, x: Tensor) -> Tensor:
        _check_tensor(self, x)
        return F.dropout(x, self.rate, name=self.name) if self.rate else x


class Activation(Layer):
    """Applies a named activation (``'tanh'``, ``'sigmoid'``, ...)."""

    def __init__(self, activation: str | None, name: str | None = None) -> None:
        super().__init__(name)
        self.fn = activations.get(activation, f"Activation {self.name!r}")

    def __call__(self, x: Tensor) -> Tensor:
        _check_tensor(self, x)
        return self.fn(x)
