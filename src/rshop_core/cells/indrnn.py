"""IndRNNCell: the independently recurrent neural network of Li et al. 2018."""

from __future__ import annotations

from .. import functional as F
from ..activations import Activation
from ..constraints import ConstraintLike
from ..initializers import Initializer, InitializerLike, RandomUniform
from ..regularizers import RegularizerLike
from ..symbolic import Tensor
from .base import Cell


class IndRNNCell(Cell):
    """Independently recurrent cell (Li et al. 2018, "Independently Recurrent Neural Network")::

        h_t = activation(x_t W + u * h_{t-1} + b)       # u: one recurrent weight per unit

    Each unit sees only its own past, so ``d h_t / d h_{t-1}`` is diagonal: the step is nonlinear but
    its Jacobian is diagonal, which parallel Newton over time can use.

    Weights: ``kernel`` (input_dim, units), ``recurrent_kernel`` (units,) = ``u``, ``bias`` (units,).
    ``activation`` is any activation by name (``relu`` by default, as in the paper).
    ``recurrent_initializer`` defaults to uniform in [0, 1]: ``|u| <= 1``, so with ``relu`` a unit
    neither explodes nor flips sign from step to step. One state ``h``; output ``h_t``. ``dropout``
    (on ``x_t``) and ``recurrent_dropout`` (on ``h_{t-1}``) draw one mask per sequence, as in
    :class:`SimpleRNNCell`.
    """

    state_names = ("h",)
    units: int
    activation: Activation
    kernel_initializer: Initializer
    recurrent_initializer: Initializer
    bias_initializer: Initializer
    kernel_regularizer: dict | None
    recurrent_regularizer: dict | None
    bias_regularizer: dict | None
    dropout: float
    recurrent_dropout: float

    def __init__(
        self,
        units: int,
        input_dim: int | None = None,
        activation: object = "relu",
        use_bias: bool = True,
        kernel_initializer: InitializerLike = "glorot_uniform",
        recurrent_initializer: InitializerLike | None = None,
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
            RandomUniform(0.0, 1.0) if recurrent_initializer is None else recurrent_initializer,
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

    def step(self, x: Tensor, states: list) -> tuple[Tensor, list[Tensor]]:
        (h,) = states
        dt = x.dtype
        k = self.add_weight(
            "kernel",
            (x.shape[-1], self.units),
            self.kernel_initializer,
            dt,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        u = self.add_weight(
            "recurrent_kernel",
            (self.units,),
            self.recurrent_initializer,
            dt,
            regularizer=self.recurrent_regularizer,
            constraint=self.recurrent_constraint,
        )
        if self.dropout:
            x = F.dropout(x, self.dropout, name=f"{self.name}/dropout")
        if self.recurrent_dropout:
            h = F.dropout(h, self.recurrent_dropout, name=f"{self.name}/recurrent_dropout")
        z = F.matmul(x, k)
        if self.use_bias:  # joined to the input's product (as Keras' SimpleRNNCell does): both are state-free
            z = F.add(z, self._bias((self.units,), self.bias_initializer, dt))
        h_new = self.activation(F.add(z, F.multiply(u, h)))
        return h_new, [h_new]
