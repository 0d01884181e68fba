"""The models every engine must run identically. Each case: a builder taking loop options,
the per-example input shape, and the per-example shapes of its constants."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rshop_core import Input, RecurrentModel
from rshop_core import functional as F
from rshop_core.cells import Cell, GRUCell, IndRNNCell, LSTMCell, MinGRUCell, SimpleRNNCell
from rshop_core.initializers import RandomNormal
from rshop_core.layers import Activation, Dense, add, concatenate


@dataclass
class Case:
    name: str
    build: Callable[..., Any]  # (**loop options) -> RecurrentModel
    input_shape: tuple[int, ...]
    constant_shapes: list[tuple[int, ...]] = field(default_factory=list)

    def inputs(self, batch: int = 3, steps: int = 5, seed: int = 0) -> tuple[np.ndarray, list[np.ndarray] | None]:
        """Random ``x`` of (batch, steps, *input_shape) and the constants (None when the case has none)."""
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((batch, steps) + self.input_shape)
        consts = [rng.standard_normal((batch, *s)) for s in self.constant_shapes]
        return x, (consts or None)


def readme_model(**opts: Any) -> Any:
    x_t = Input(shape=(5,))
    h_tm1 = Input(shape=(10,))
    h_t = Activation("tanh")(add([Dense(10)(x_t), Dense(10, use_bias=False)(h_tm1)]))
    return RecurrentModel(input=x_t, initial_states=[h_tm1], output=h_t, final_states=[h_t], seed=3, **opts)


class TwoStateCell(Cell):
    """A made-up cell with two states of different shapes that touches most ops."""

    state_names = ("h", "m")

    def state_shapes(self) -> list[tuple[int | None, ...]]:
        return [(self.units,), (2, 3)]

    def step(self, x: Any, states: Any) -> Any:
        h, m = states
        u = self.units
        assert u is not None
        k = self.add_weight("kernel", (x.shape[-1], u), "glorot_uniform")
        r = self.add_weight("recurrent_kernel", (u + 6, u), "orthogonal")
        g = self.add_weight("gain", (2, 3), RandomNormal(1.0, 0.1))
        flat = F.reshape(F.transpose(m, [1, 0]), [6])
        z = F.matmul(x, k) + F.matmul(F.concat([h, flat]), r)
        gate = F.hard_sigmoid(z) * F.softsign(z) + F.sigmoid(z) * 0.5
        pos = F.where(F.greater(z, 0.0), F.elu(z), F.softplus(z))
        h_new = F.tanh(gate + pos * 0.1 - F.relu(-z) * 0.2)
        first = F.reshape(F.slice(h_new, 0, 6 if u >= 6 else u), [2, 3])
        m_new = F.softmax(m + F.log(1.0 + F.square(first)) * g, axis=-1)
        m_new = m_new * F.sqrt(1.0 + F.abs(F.mean(first, axes=[-1], keepdims=True)))
        total = F.max(F.sum(m_new, axes=-1, keepdims=True), axes=[0], keepdims=True)
        m_new = F.minimum(F.maximum(m_new, 0.01), 2.0) / (1.0 + F.exp(-total))
        out = F.concat([h_new, F.reshape(m_new, [6])])
        return out, [h_new, m_new]


def two_state_model(**opts: Any) -> Any:
    return TwoStateCell(6, input_dim=4).get_layer(seed=5, **opts)


def attention_model(**opts: Any) -> Any:
    """A decoder-like step scoring a constant encoder sequence with einsum + softmax."""
    x_t = Input((4,), name="x")
    h = Input((8,), name="h")
    enc = Input((None, 8), name="encoder")
    q = Dense(8, name="query")(h)
    scores = F.einsum("td,d->t", enc, q)
    context = F.einsum("t,td->d", F.softmax(scores), enc)
    h_new = Dense(8, activation="tanh", name="update")(concatenate([x_t, context, h]))
    return RecurrentModel(
        input=x_t,
        initial_states=[h],
        output=[h_new, F.softmax(scores)],
        final_states=[h_new],
        constants=[enc],
        seed=7,
        **opts,
    )


def _cell(cls: type[Cell], **kw: Any) -> Callable[..., Any]:
    return lambda **opts: cls(6, input_dim=4, **kw).get_layer(seed=11, **opts)


CASES = {
    c.name: c
    for c in [
        Case("simple_rnn", _cell(SimpleRNNCell), (4,)),
        Case("gru", _cell(GRUCell, bias_initializer=RandomNormal(0, 0.5)), (4,)),
        Case("gru_reset_before", _cell(GRUCell, reset_after=False, bias_initializer=RandomNormal(0, 0.5)), (4,)),
        Case("lstm", _cell(LSTMCell), (4,)),
        Case(
            "lstm_variant",
            _cell(
                LSTMCell,
                recurrent_activation="hard_sigmoid",
                activation="softsign",
                unit_forget_bias=False,
                bias_initializer=RandomNormal(0, 0.5),
            ),
            (4,),
        ),
        Case("min_gru", _cell(MinGRUCell, bias_initializer=RandomNormal(0, 0.5)), (4,)),
        Case("indrnn", _cell(IndRNNCell, bias_initializer=RandomNormal(0, 0.5)), (4,)),
        Case("readme", readme_model, (5,)),
        Case("two_state_custom", two_state_model, (4,)),
        Case("attention", attention_model, (4,), [(7, 8)]),
    ]
}
