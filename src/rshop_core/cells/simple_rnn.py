"""SimpleRNNCell: ``h_t = activation(x_t @ kernel + h_{t-1} @ recurrent_kernel + bias)``."""

from __future__ import annotations

from .. import functional as F
from .base import Cell


class SimpleRNNCell(Cell):
    """Elman cell. Weights (Keras layout): ``kernel`` (input_dim, units),
    ``recurrent_kernel`` (units, units), ``bias`` (units,). One state ``h``; output ``h_t``."""

    state_names = ("h",)

    def __init__(self, units, input_dim=None, activation="tanh", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", name=None):
        super().__init__(units, input_dim, name)
        self._resolve(activation=activation, use_bias=bool(use_bias), kernel_initializer=kernel_initializer,
                      recurrent_initializer=recurrent_initializer, bias_initializer=bias_initializer)

    def step(self, x, states):
        (h,) = states
        u, dt = self.units, x.dtype
        k = self.add_weight("kernel", (x.shape[-1], u), self.kernel_initializer, dt)
        r = self.add_weight("recurrent_kernel", (u, u), self.recurrent_initializer, dt)
        z = F.add(F.matmul(x, k), F.matmul(h, r))
        if self.use_bias:
            z = F.add(z, self.add_weight("bias", (u,), self.bias_initializer, dt))
        h = self.activation(z)
        return h, [h]
