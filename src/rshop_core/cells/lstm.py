"""LSTMCell with the standard equations and Keras' weight layout."""

from __future__ import annotations

from .. import functional as F
from ..activations import Activation
from ..constraints import ConstraintLike
from ..initializers import Concatenate, Initializer, InitializerLike
from ..regularizers import RegularizerLike
from ..symbolic import Tensor
from .base import Cell


class LSTMCell(Cell):
    """Long short-term memory (Hochreiter & Schmidhuber; forget gate of Gers et al.).

    With ``z = x_t @ kernel + h_{t-1} @ recurrent_kernel + bias`` cut into four gates
    ``[i | f | g | o]`` (columns, Keras order ``[i|f|c|o]``)::

        i, f, o = recurrent_activation(z_i), recurrent_activation(z_f), recurrent_activation(z_o)
        g = activation(z_g)
        c_t = f * c_{t-1} + i * g
        h_t = o * activation(c_t)

    Weights: ``kernel`` (input_dim, 4 units), ``recurrent_kernel`` (units, 4 units), ``bias``
    (4 units,). torch.nn.LSTM holds the transposes with rows in the same ``[i|f|g|o]`` order and
    two biases (their sum is ``bias``). States ``[h, c]``; output ``h_t``.
    ``unit_forget_bias=True`` initialises the forget bias to ones (the rest by ``bias_initializer``).
    """

    state_names = ("h", "c")
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
        unit_forget_bias: bool = True,
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
        self.unit_forget_bias = bool(unit_forget_bias)

    def step(self, x: Tensor, states: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        h, c = states
        u = self.units
        k, r, x, h_in = self._kernels(x, h, 4 * u)
        z = F.add(F.matmul(x, k), F.matmul(h_in, r))
        if self.use_bias:
            b_init: Initializer = self.bias_initializer
            if self.unit_forget_bias:
                b_init = Concatenate([(u, b_init), (u, "ones"), (2 * u, b_init)])
            z = F.add(z, self._bias((4 * u,), b_init, x.dtype))
        zi, zf, zg, zo = F.split(z, 4)
        i, f, o = self.recurrent_activation(zi), self.recurrent_activation(zf), self.recurrent_activation(zo)
        c = F.add(F.multiply(f, c), F.multiply(i, self.activation(zg)))
        h = F.multiply(o, self.activation(c))
        return h, [h, c]
