"""SimpleRNNCell: ``h_t = activation(x_t @ kernel + h_{t-1} @ recurrent_kernel + bias)``."""

from __future__ import annotations

from .. import functional as F
from ..activations import Activation
from .base import Cell


class SimpleRNNCell(Cell):
    """Elman cell. Weights (Keras layout): ``kernel`` (input_dim, units),
    ``recurrent_kernel`` (units, units), ``bias`` (units,). One state ``h``; output ``h_t``."""

    state_names = ("h",)
    activation: Activation

    def __init__(
        self,
        units,
        input_dim=None,
        activation="tanh",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        dropout=0.0,
        recurrent_dropout=0.0,
        name=None,
    ):
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

    def step(self, x, states):
        (h,) = states
        k, r, x, h_in = self._kernels(x, h, self.units)
        z = F.add(F.matmul(x, k), F.matmul(h_in, r))
        if self.use_bias:
            z = F.add(z, self._bias((self.units,), self.bias_initializer, x.dtype))
        h = self.activation(z)
        return h, [h]
