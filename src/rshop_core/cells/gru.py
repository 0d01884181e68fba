"""GRUCell with the standard equations and Keras' weight layout (both reset conventions)."""

from __future__ import annotations

from .. import functional as F
from ..activations import Activation
from ..constraints import ConstraintLike
from ..initializers import InitializerLike
from ..regularizers import RegularizerLike
from ..symbolic import Tensor
from .base import Cell


class GRUCell(Cell):
    """Gated recurrent unit (Cho et al. 2014), gates ``[z | r | h]`` in Keras' column order::

        z = recurrent_activation(x W_z + h U_z + b_z)          # update gate
        r = recurrent_activation(x W_r + h U_r + b_r)          # reset gate
        reset_after=True:  n = activation(x W_h + b_xh + r * (h U_h + b_hh))   (torch.nn.GRU, cuDNN)
        reset_after=False: n = activation(x W_h + b_h + (r * h) U_h)
        h_t = z * h_{t-1} + (1 - z) * n

    Weights: ``kernel`` (input_dim, 3 units), ``recurrent_kernel`` (units, 3 units), ``bias``
    (2, 3 units) with reset_after (row 0 input bias, row 1 recurrent bias) else (3 units,).
    torch.nn.GRU orders its rows ``[r|z|n]``. One state ``h``; output ``h_t``.
    """

    state_names = ("h",)
    units: int
    activation: Activation
    recurrent_activation: Activation

    def __init__(
        self,
        units: int,
        input_dim: int | None = None,
        activation: str | None = "tanh",
        recurrent_activation: str | None = "sigmoid",
        use_bias: bool = True,
        kernel_initializer: InitializerLike = "glorot_uniform",
        recurrent_initializer: InitializerLike = "orthogonal",
        bias_initializer: InitializerLike = "zeros",
        reset_after: bool = True,
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
        self._resolve_activations(activation=activation, recurrent_activation=recurrent_activation)
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
        self.reset_after = bool(reset_after)

    def step(self, x: Tensor, states: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        (h,) = states
        u, dt = self.units, x.dtype
        k, r, x, h_in = self._kernels(x, h, 3 * u)  # h_in: h after recurrent dropout, for the matmuls
        xw = F.matmul(x, k)
        b_in: Tensor | None = None
        b_rec: Tensor | None = None
        if self.use_bias:
            if self.reset_after:
                b = self._bias((2, 3 * u), self.bias_initializer, dt)
                b_in, b_rec = (F.reshape(p, [3 * u]) for p in F.split(b, 2, axis=0))
            else:
                b_in = self._bias((3 * u,), self.bias_initializer, dt)
        if b_in is not None:
            xw = F.add(xw, b_in)
        x_z, x_r, x_h = F.split(xw, 3)
        rz, rr, rh = F.split(r, 3)
        if self.reset_after:
            hu = F.matmul(h_in, r)
            if b_rec is not None:
                hu = F.add(hu, b_rec)
            h_z, h_r, h_h = F.split(hu, 3)
            z = self.recurrent_activation(F.add(x_z, h_z))
            reset = self.recurrent_activation(F.add(x_r, h_r))
            n = self.activation(F.add(x_h, F.multiply(reset, h_h)))
        else:
            hu = F.matmul(h_in, F.concat([rz, rr]))
            h_z, h_r = F.split(hu, 2)
            z = self.recurrent_activation(F.add(x_z, h_z))
            reset = self.recurrent_activation(F.add(x_r, h_r))
            n = self.activation(F.add(x_h, F.matmul(F.multiply(reset, h_in), rh)))
        h_new = F.add(F.multiply(z, h), F.multiply(F.subtract(1.0, z), n))
        return h_new, [h_new]
