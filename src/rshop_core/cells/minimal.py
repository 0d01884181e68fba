"""MinGRUCell and MinLSTMCell: the minimal GRU and LSTM of Feng et al. 2024, whose gates read x only.

Because no gate reads the previous state, the new state is affine in it (a diagonal matrix times
``h_{t-1}`` plus a term of ``x_t``), and the loop may run as a parallel scan over time.
"""

from __future__ import annotations

from .. import functional as F
from ..initializers import Initializer
from ..symbolic import Tensor
from .base import Cell


class _InputGatedCell(Cell):
    """The shared part of the minimal cells: one ``kernel`` (input_dim, n units) and one ``bias``
    (n units,) computing every gate and the candidate from ``x_t`` in one matmul."""

    state_names = ("h",)
    units: int
    n_pieces = 1
    kernel_initializer: Initializer
    bias_initializer: Initializer
    kernel_regularizer: dict | None
    bias_regularizer: dict | None
    dropout: float

    def __init__(
        self,
        units: int,
        input_dim: int | None = None,
        use_bias: bool = True,
        kernel_initializer: object = "glorot_uniform",
        bias_initializer: object = "zeros",
        kernel_regularizer: object = None,
        bias_regularizer: object = None,
        kernel_constraint: object = None,
        bias_constraint: object = None,
        dropout: float = 0.0,
        name: str | None = None,
    ) -> None:
        super().__init__(units, input_dim, name)
        self.use_bias = bool(use_bias)
        self._resolve_weight_options(
            initializers={"kernel_initializer": kernel_initializer, "bias_initializer": bias_initializer},
            regularizers={"kernel_regularizer": kernel_regularizer, "bias_regularizer": bias_regularizer},
            rates={"dropout": dropout},
        )
        self._resolve_constraints(kernel_constraint=kernel_constraint, bias_constraint=bias_constraint)

    def _pieces(self, x: Tensor) -> list[Tensor]:
        """``x_t @ kernel + bias`` (after input dropout) cut into ``n_pieces`` pieces of ``units``."""
        width = self.n_pieces * self.units
        k = self.add_weight(
            "kernel",
            (x.shape[-1], width),
            self.kernel_initializer,
            x.dtype,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        if self.dropout:
            x = F.dropout(x, self.dropout, name=f"{self.name}/dropout")
        z = F.matmul(x, k)
        if self.use_bias:
            z = F.add(z, self._bias((width,), self.bias_initializer, x.dtype))
        return list(F.split(z, self.n_pieces))


class MinGRUCell(_InputGatedCell):
    """Minimal GRU (Feng et al. 2024, "Were RNNs All We Needed?"), gates ``[z | h]`` in columns::

        z_t = sigmoid(x_t W_z + b_z)                    # update gate: reads x only
        h~_t = x_t W_h + b_h                            # candidate: reads x only
        h_t = (1 - z_t) * h_{t-1} + z_t * h~_t

    Weights: ``kernel`` (input_dim, 2 units), ``bias`` (2 units,). One state ``h``; output ``h_t``.
    ``dropout`` applies one mask per sequence to ``x_t`` in training, as in :class:`SimpleRNNCell`.
    This is the paper's plain form (its log-space form only changes how a scan evaluates it).
    """

    n_pieces = 2

    def step(self, x: Tensor, states: list) -> tuple[Tensor, list[Tensor]]:
        (h,) = states
        x_z, x_h = self._pieces(x)
        z = F.sigmoid(x_z)
        h_new = F.add(F.multiply(F.subtract(1.0, z), h), F.multiply(z, x_h))
        return h_new, [h_new]


class MinLSTMCell(_InputGatedCell):
    """Minimal LSTM (Feng et al. 2024), gates ``[f | i | h]`` in columns, one state::

        f_t = sigmoid(x_t W_f + b_f)                    # forget gate: reads x only
        i_t = sigmoid(x_t W_i + b_i)                    # input gate: reads x only
        h~_t = x_t W_h + b_h
        f'_t, i'_t = f_t / (f_t + i_t), i_t / (f_t + i_t)   # normalised: f' + i' = 1
        h_t = f'_t * h_{t-1} + i'_t * h~_t

    Weights: ``kernel`` (input_dim, 3 units), ``bias`` (3 units,). One state ``h`` (no cell state:
    the normalisation makes ``h`` a convex mix, so it needs no output gate); output ``h_t``.
    ``dropout`` applies one mask per sequence to ``x_t`` in training.
    """

    n_pieces = 3

    def step(self, x: Tensor, states: list) -> tuple[Tensor, list[Tensor]]:
        (h,) = states
        x_f, x_i, x_h = self._pieces(x)
        f, i = F.sigmoid(x_f), F.sigmoid(x_i)
        total = F.add(f, i)
        h_new = F.add(F.multiply(F.divide(f, total), h), F.multiply(F.divide(i, total), x_h))
        return h_new, [h_new]
