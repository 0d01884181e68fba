"""SimpleRNNCell: ``h_t = activation(x_t @ kernel + h_{t-1} @ recurrent_kernel + bias)``."""

from __future__ import annotations

from .. import functional as F
from ..activations import Activation
from ..constraints import ConstraintLike
from ..initializers import InitializerLike
from ..regularizers import RegularizerLike
from ..symbolic import Tensor
from .base import Cell


class SimpleRNNCell(Cell):
    """Elman cell. Weights (Keras layout): ``kernel`` (input_dim, units),
    ``recurrent_kernel`` (units, units), ``bias`` (units,). One state ``h``; output ``h_t``."""

    state_names = ("h",)
    units: int
    activation: Activation

    def __init__(
        self,
        units: int,
        input_dim: int | None = None,
        activation: str | None = "tanh",
        use_bias: bool = True,
        kernel_initializer: InitializerLike = "glorot_uniform",
        recurrent_initializer: InitializerLike = "orthogonal",
        bias_initializer: InitializerLike = "zeros",
        kernel_regularizer: RegularizerLike = None,
        recurrent_regularizer: RegularizerLike = None,
        bias_regularizer: RegularizerLike = None,
        kernel_constraint: ConstraintLike = None,
        recurrent_constraint: ConstraintLike = None,
        bias_constraint: ConstraintLike = None,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        name: str | None = None,
    ) -> None:
        super().__init__(units, input_dim, name)
        self._resolve_activations(activation=activation)
        self._resolve_kernels(
            use_bias,
            kernel_initializer,
            recurrent_initializer,
            bias_initializer,
            kernel_regularizer,
            recurrent_regularizer,
            bias_regularizer,
            dropout,
            recurrent_dropout,
        )
        self._resolve_constraints(
            kernel_constraint=kernel_constraint,
            recurrent_constraint=recurrent_constraint,
            bias_constraint=bias_constraint,
        )

    def step(self, x: Tensor, states: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        (h,) = states
        k, r, x, h_in = self._kernels(x, h, self.units)
        z = F.add(F.matmul(x, k), F.matmul(h_in, r))
        if self.use_bias:
            z = F.add(z, self._bias((self.units,), self.bias_initializer, x.dtype))
        h = self.activation(z)
        return h, [h]
