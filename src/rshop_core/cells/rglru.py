"""RGLRUCell: the Real-Gated Linear Recurrent Unit of Griffin and Hawk (De et al. 2024)."""

from __future__ import annotations

import math

from .. import functional as F
from ..errors import RshopConfigError
from ..initializers import Initializer, LogitUniform
from ..symbolic import Tensor
from .base import Cell

# 1 - a_t^2 is floored here before its square root: where a_t rounds to 1 (a recurrence gate near 0)
# the derivative of sqrt at 0 would be infinite. 1 / (2 sqrt(2.5e-7)) = 1000 is the largest slope kept,
# the bound Griffin's reference code puts on the same derivative.
MIN_NORMALISER_SQUARE = 2.5e-7


class RGLRUCell(Cell):
    """Real-Gated Linear Recurrent Unit (De et al. 2024, "Griffin"), gates ``[a | x | in]`` in columns::

        r_t = sigmoid(x_t W_a + b_a)                    # recurrence gate: reads x only
        i_t = sigmoid(x_t W_x + b_x)                    # input gate: reads x only
        u_t = x_t W_in + b_in                           # the input, projected to `units`
        log a_t = -c * r_t * softplus(-Lambda)          # = c r_t log(sigmoid(Lambda)), so 0 < a_t <= 1
        a_t = exp(log a_t)
        h_t = a_t * h_{t-1} + sqrt(max(1 - a_t^2, 2.5e-7)) * (i_t * u_t)

    In Griffin the input already has the recurrence's width and ``u_t = x_t``; here ``W_in`` projects
    an input of any width to ``units`` (use an identity ``kernel`` block to recover the paper's form).
    The floor 2.5e-7 only bounds the slope of the square root where ``a_t`` rounds to 1
    (``MIN_NORMALISER_SQUARE``). ``c`` (8 in the paper) is fixed, ``Lambda`` is learned per unit.

    Weights: ``kernel`` (input_dim, 3 units), ``bias`` (3 units,), ``a_param`` (units,) = ``Lambda``,
    drawn by ``a_initializer`` (default ``LogitUniform(0.9, 0.999)``: ``a = sigmoid(Lambda)`` uniform in
    [0.9, 0.999]). One state ``h``; output ``h_t``. ``dropout`` applies one mask per sequence to ``x_t``.
    """

    state_names = ("h",)
    units: int
    kernel_initializer: Initializer
    a_initializer: Initializer
    bias_initializer: Initializer
    kernel_regularizer: dict | None
    a_regularizer: dict | None
    bias_regularizer: dict | None
    a_constraint: dict | None
    dropout: float

    def __init__(
        self,
        units: int,
        input_dim: int | None = None,
        c: float = 8.0,
        use_bias: bool = True,
        kernel_initializer: object = "glorot_uniform",
        a_initializer: object = None,
        bias_initializer: object = "zeros",
        kernel_regularizer: object = None,
        a_regularizer: object = None,
        bias_regularizer: object = None,
        kernel_constraint: object = None,
        a_constraint: object = None,
        bias_constraint: object = None,
        dropout: float = 0.0,
        name: str | None = None,
    ) -> None:
        super().__init__(units, input_dim, name)
        if isinstance(c, bool) or not isinstance(c, (int, float)) or not math.isfinite(c) or c <= 0:
            raise RshopConfigError(
                f"RGLRUCell {self.name!r} c: expected a finite number > 0 (8 in Griffin), received {c!r}."
            )
        self.c = float(c)
        self.use_bias = bool(use_bias)
        self._resolve_weight_options(
            initializers={
                "kernel_initializer": kernel_initializer,
                "a_initializer": LogitUniform(0.9, 0.999) if a_initializer is None else a_initializer,
                "bias_initializer": bias_initializer,
            },
            regularizers={
                "kernel_regularizer": kernel_regularizer,
                "a_regularizer": a_regularizer,
                "bias_regularizer": bias_regularizer,
            },
            rates={"dropout": dropout},
        )
        self._resolve_constraints(
            kernel_constraint=kernel_constraint, a_constraint=a_constraint, bias_constraint=bias_constraint
        )

    def step(self, x: Tensor, states: list) -> tuple[Tensor, list[Tensor]]:
        (h,) = states
        u, dt = self.units, x.dtype
        k = self.add_weight(
            "kernel",
            (x.shape[-1], 3 * u),
            self.kernel_initializer,
            dt,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        lam = self.add_weight(
            "a_param", (u,), self.a_initializer, dt, regularizer=self.a_regularizer, constraint=self.a_constraint
        )
        if self.dropout:
            x = F.dropout(x, self.dropout, name=f"{self.name}/dropout")
        z = F.matmul(x, k)
        if self.use_bias:
            z = F.add(z, self._bias((3 * u,), self.bias_initializer, dt))
        x_a, x_x, x_in = F.split(z, 3)
        r, i = F.sigmoid(x_a), F.sigmoid(x_x)
        log_a = F.multiply(F.multiply(r, F.softplus(F.negative(lam))), -self.c)
        a = F.exp(log_a)
        normaliser = F.sqrt(F.maximum(F.subtract(1.0, F.square(a)), MIN_NORMALISER_SQUARE))
        h_new = F.add(F.multiply(a, h), F.multiply(normaliser, F.multiply(i, x_in)))
        return h_new, [h_new]
