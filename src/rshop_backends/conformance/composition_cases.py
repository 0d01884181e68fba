"""Models and calls for the composition features (RecurrentShop's wiring), shared by the tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from rshop_core import Bidirectional, Input, RecurrentModel, RecurrentSequential
from rshop_core import functional as F
from rshop_core import initializers as I
from rshop_core.cells import GRUCell, LSTMCell, SimpleRNNCell
from rshop_core.layers import Dense, Dropout

RNG = np.random.default_rng(123)
B, T = 3, 6


def arr(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape)


def readout_model(**opts: Any) -> Any:
    """A functional readout: the step reads its own previous output y_{t-1}."""
    x, h, y_tm1 = Input((3,), name="x"), Input((4,), name="h"), Input((2,), name="y_tm1")
    h_new = Dense(4, activation="tanh", name="core")(F.concat([x, h, y_tm1]))
    y = Dense(2, name="out")(h_new)
    return RecurrentModel(
        input=x,
        initial_states=[h],
        output=y,
        final_states=[h_new],
        readout_input=y_tm1,
        teacher_force=True,
        seed=31,
        **opts,
    )


def decode_model(**opts: Any) -> Any:
    """decode: one (batch, 5) vector seen at each of the output_length steps, through a nested LSTM cell."""
    cell = LSTMCell(6, input_dim=5, name="dec_lstm")
    x = Input((5,), name="x")
    states = [Input((6,), name="h"), Input((6,), name="c")]
    y, new = cell(x, states)
    opts.setdefault("output_length", 4)
    opts.setdefault("return_sequences", False)  # the "last" variant of the cases (decode's default is the sequence)
    return RecurrentModel(
        input=x, initial_states=states, output=Dense(3)(y), final_states=new, decode=True, seed=32, **opts
    )


def state_sync_stack(**opts: Any) -> Any:
    seq = RecurrentSequential(state_sync=True, seed=33, **opts)
    for i in range(3):
        seq.add(LSTMCell(5, input_dim=5, name=f"lstm_{i}"))
    return seq


def readout_stack(mode: str, **opts: Any) -> Any:
    seq = RecurrentSequential(readout=mode, readout_activation="tanh", seed=34, **opts)
    seq.add(GRUCell(5, input_dim=4))
    seq.add(Dense(4))
    return seq


def nested_model(**opts: Any) -> Any:
    """Two levels of nesting: an LSTM model inside a stack, the stack inside a custom step."""
    inner = LSTMCell(5, input_dim=4).get_layer(seed=35)
    stack = RecurrentSequential(name="stack", seed=36)
    stack.add(inner)
    stack.add(SimpleRNNCell(4, input_dim=5))
    cell = stack.get_cell()
    x = Input((4,), name="x")
    states = [Input(s, name=n) for s, n in zip(cell.state_shapes(), cell.state_names)]
    y, new = cell(x, states)
    return RecurrentModel(input=x, initial_states=states, output=F.tanh(Dense(3)(y)), final_states=new, seed=37, **opts)


def init_model(**opts: Any) -> Any:
    """A learned initial h and a seeded random initial c."""
    return LSTMCell(5, input_dim=4).get_layer(
        seed=38, state_initializer=[I.Learned("glorot_uniform"), I.RandomNormal(0.0, 0.5)], **opts
    )


def dropout_model(**opts: Any) -> Any:
    """Cell dropout (input and recurrent) and a Dropout layer inside a custom step."""
    cell = GRUCell(5, input_dim=4, dropout=0.3, recurrent_dropout=0.2)
    x, h = Input((4,), name="x"), Input((5,), name="h")
    y, new = cell(Dropout(0.25)(x), [h])
    return RecurrentModel(input=x, initial_states=[h], output=y, final_states=new, seed=39, **opts)


def regularized_model(**opts: Any) -> Any:
    return LSTMCell(
        5, input_dim=4, kernel_regularizer={"l1": 0.01, "l2": 0.02}, recurrent_regularizer="l2", bias_regularizer="l1"
    ).get_layer(seed=40, **opts)


def bidirectional(merge: str | None, **opts: Any) -> Any:
    return Bidirectional(GRUCell(5, input_dim=4).get_layer(seed=41, **opts), merge_mode=merge)


LENGTHS = np.array([6, 3, 1], dtype=np.int32)
MASK = np.arange(T)[None, :] < LENGTHS[:, None]

# name: (builder, loop options, x shape, call keywords)
FEATURES: dict[str, tuple[Callable[..., Any], dict[str, Any], tuple[int, ...], dict[str, Any]]] = {
    "readout": (readout_model, {}, (B, T, 3), {}),
    "readout_initial": (readout_model, {}, (B, T, 3), {"initial_readout": arr(B, 2)}),
    "teacher_forcing": (readout_model, {}, (B, T, 3), {"ground_truth": arr(B, T, 2), "training": True}),
    "teacher_forcing_backwards": (
        readout_model,
        {"go_backwards": True},
        (B, T, 3),
        {"ground_truth": arr(B, T, 2), "training": True, "initial_readout": arr(B, 2)},
    ),
    "teacher_model_inference": (readout_model, {}, (B, T, 3), {"training": False}),
    "decode": (decode_model, {}, (B, 5), {}),
    "decode_length_at_call": (decode_model, {"output_length": None}, (B, 5), {"output_length": 7}),
    "state_sync": (state_sync_stack, {}, (B, T, 5), {}),
    "readout_add": (lambda **o: readout_stack("add", **o), {}, (B, T, 4), {}),
    "readout_mul": (lambda **o: readout_stack("mul", **o), {}, (B, T, 4), {}),
    "readout_avg": (lambda **o: readout_stack("avg", **o), {}, (B, T, 4), {}),
    "readout_max": (lambda **o: readout_stack("max", **o), {}, (B, T, 4), {}),
    "readout_only": (lambda **o: readout_stack("readout_only", **o), {}, (B, T, 4), {}),
    "nested": (nested_model, {}, (B, T, 4), {}),
    "state_initializers": (init_model, {}, (B, T, 4), {}),
    "dropout_training": (dropout_model, {}, (B, T, 4), {"training": True}),
    "dropout_inference": (dropout_model, {}, (B, T, 4), {}),
    "mask": (lambda **o: GRUCell(5, input_dim=4).get_layer(seed=42, **o), {}, (B, T, 4), {"mask": MASK}),
    "lengths_backwards": (
        lambda **o: GRUCell(5, input_dim=4).get_layer(seed=42, **o),
        {"go_backwards": True},
        (B, T, 4),
        {"sequence_lengths": LENGTHS},
    ),
    "mask_zero_output": (
        lambda **o: LSTMCell(5, input_dim=4).get_layer(seed=43, **o),
        {"zero_output_for_mask": True},
        (B, T, 4),
        {"mask": MASK},
    ),
    "mask_readout": (readout_model, {}, (B, T, 3), {"mask": MASK}),
    "bidirectional_concat": (lambda **o: bidirectional("concat", **o), {}, (B, T, 4), {}),
    "bidirectional_sum_lengths": (lambda **o: bidirectional("sum", **o), {}, (B, T, 4), {"sequence_lengths": LENGTHS}),
    "bidirectional_mul": (lambda **o: bidirectional("mul", **o), {}, (B, T, 4), {}),
    "bidirectional_ave": (lambda **o: bidirectional("ave", **o), {}, (B, T, 4), {"mask": MASK}),
    "bidirectional_none": (lambda **o: bidirectional(None, **o), {}, (B, T, 4), {}),
}
X = {name: RNG.standard_normal(spec[2]) for name, spec in FEATURES.items()}
