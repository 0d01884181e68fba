"""RecurrentShop's README, section by section, in rshop's API (docs/migrating.md lists each difference)."""

from __future__ import annotations

import numpy as np
import pytest

from rshop_core import Input, RecurrentModel, RecurrentSequential, RshopError
from rshop_core.cells import GRUCell, LSTMCell, SimpleRNNCell
from rshop_core.layers import Activation, Dense, add

from .port import agrees

RNG = np.random.default_rng(2017)


def simple_rnn(**options):
    """Section "Writing a Simple RNN using Functional API": h_t = tanh(W x_t + b + U h_{t-1})."""
    x_t = Input(shape=(5,))
    h_tm1 = Input(shape=(10,))
    h_t = add([Dense(10)(x_t), Dense(10, use_bias=False)(h_tm1)])
    h_t = Activation("tanh")(h_t)
    return RecurrentModel(input=x_t, initial_states=[h_tm1], output=h_t, final_states=[h_t], seed=1, **options)


RNN = simple_rnn()
RNN2 = simple_rnn(return_sequences=True)
X = RNG.random((1, 7, 5))


def test_simple_rnn_returns_last_h(engine):
    (out,) = agrees(RNN, engine, X, "readme simple rnn")
    assert out.shape == (1, 10)  # print(out.shape) #->(1,10)


def test_simple_rnn_by_hand():
    """The reference itself against the README's equation, written in numpy."""
    w = RNN.get_weights()
    h = np.zeros((1, 10))
    for t in range(7):
        h = np.tanh(X[:, t] @ w["dense/kernel"] + w["dense/bias"] + h @ w["dense_1/kernel"])
    want = RNN.lower("numpy", "float64")(X)
    np.testing.assert_allclose(want, h, atol=1e-12)


def test_simple_rnn_return_sequences_any_length(engine):
    """`rnn2` with return_sequences=True; "Time_steps can also be None": one layer, two lengths."""
    (out2,) = agrees(RNN2, engine, X, "readme rnn2")
    assert out2.shape == (1, 7, 10)  # print(out2.shape)#->(1,7,10)
    (short,) = agrees(RNN2, engine, X[:, :3], "readme rnn2, 3 steps")
    assert short.shape == (1, 3, 10)


def test_symbolic_sequence_call_points_to_keras_layer():
    """RecurrentShop: `y = rnn(Input(shape=(7, 5)))` inside a Keras model. rshop builds whole-sequence graphs
    with rshop_backends.keras.RecurrentLayer; the error says so."""
    with pytest.raises(RshopError, match="RecurrentLayer"):
        RNN(Input(shape=(7, 5)))


def test_simple_rnn_in_a_keras_model():
    """The README's `Model(x, rnn(x))` and `model.predict`, through rshop_backends.keras.RecurrentLayer."""
    keras = pytest.importorskip("keras", reason="keras is not installed in this session")
    from rshop_backends.keras import RecurrentLayer

    x = keras.Input(shape=(7, 5))
    y = RecurrentLayer(RNN)(x)
    model = keras.Model(x, y)
    out = model.predict(X.astype("float32"), verbose=0)
    assert out.shape == (1, 10)
    np.testing.assert_allclose(out, RNN.lower("numpy", "float64")(X), atol=1e-5)


LSTM_LAYER = LSTMCell(10, input_dim=5).get_layer(return_sequences=True, unroll=True, seed=2)


def test_cell_get_layer(engine):
    """Section "RNNCells": `lstm_cell.get_layer(return_sequences=True, unroll=True)`."""
    (y,) = agrees(LSTM_LAYER, engine, RNG.random((2, 4, 5)), "readme lstm get_layer")
    assert y.shape == (2, 4, 10)


def recurrent_sequential():
    """Section "RecurrentSequential": a Keras `GRU(8)` layer in the stack is rshop's GRUCell(8)."""
    rnn = RecurrentSequential(unroll=False, return_sequences=False, seed=3)
    rnn.add(SimpleRNNCell(10, input_dim=5))
    rnn.add(LSTMCell(12))
    rnn.add(Dense(5))
    rnn.add(GRUCell(8))
    return rnn


SEQ = recurrent_sequential()


def test_recurrent_sequential(engine):
    (y,) = agrees(SEQ, engine, RNG.random((2, 4, 5)), "readme RecurrentSequential")
    assert y.shape == (2, 8)


def nested():
    """Section "Nesting RecurrentSequentials": rnn1.get_cell() added to rnn2."""
    rnn1 = RecurrentSequential(seed=4)
    rnn1.add(SimpleRNNCell(6, input_dim=5))
    rnn1.add(LSTMCell(6))
    rnn1_cell = rnn1.get_cell()
    rnn2 = RecurrentSequential(return_sequences=True, return_states=True, seed=5)
    rnn2.add(rnn1_cell)
    rnn2.add(GRUCell(4))
    return rnn2


NESTED = nested()


def test_nested_recurrent_sequentials(engine):
    """Outputs and all four final states (the nested SimpleRNN's h, LSTM's h and c, the GRU's h)."""
    y, *states = agrees(NESTED, engine, RNG.random((2, 4, 5)), "readme nested")
    assert y.shape == (2, 4, 4)
    assert [s.shape for s in states] == [(2, 6), (2, 6), (2, 6), (2, 4)]


def functional_cells(list_form):
    """Section "Using RNNCells in Functional API": an LSTMCell and a GRUCell side by side, outputs added."""
    input = Input((5,))
    state1_tm1 = Input((10,))
    state2_tm1 = Input((10,))
    state3_tm1 = Input((10,))
    if list_form:  # RecurrentShop's form: cell([x, *states]) -> [y, *new_states]
        lstm_output, state1_t, state2_t = LSTMCell(10)([input, state1_tm1, state2_tm1])
        gru_output, state3_t = GRUCell(10)([input, state3_tm1])
    else:  # rshop's form today: cell(x, states) -> (y, new_states)
        lstm_output, (state1_t, state2_t) = LSTMCell(10)(input, [state1_tm1, state2_tm1])
        gru_output, (state3_t,) = GRUCell(10)(input, [state3_tm1])
    output = add([lstm_output, gru_output])
    output = Activation("tanh")(output)
    return RecurrentModel(
        input=input,
        initial_states=[state1_tm1, state2_tm1, state3_tm1],
        output=output,
        final_states=[state1_t, state2_t, state3_t],
        return_states=True,
        seed=6,
    )


FUNCTIONAL = functional_cells(list_form=False)
X_FUNCTIONAL = RNG.random((2, 4, 5))


def test_cells_in_functional_api(engine):
    y, *states = agrees(FUNCTIONAL, engine, X_FUNCTIONAL, "readme functional cells")
    assert y.shape == (2, 10) and [s.shape for s in states] == [(2, 10)] * 3


def test_cells_in_functional_api_list_form():
    """The README's own call form builds the same model: same weights, same numbers."""
    model = functional_cells(list_form=True)
    want = FUNCTIONAL.lower("numpy", "float64")(X_FUNCTIONAL)
    got = model.lower("numpy", "float64")(X_FUNCTIONAL)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, atol=1e-12)
