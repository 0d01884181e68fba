"""The semantics RecurrentShop and Keras users bring (issue 12, items 1-4), on every engine against the
numpy float64 reference: decode's default output, stateful layers without batch_size, padded state
initializer lists, Input(batch_shape=...), the list call form of cells, symbolic calls refused."""

from __future__ import annotations

import numpy as np
import pytest

from rshop_core import Input, RecurrentModel, RshopConfigError, RshopShapeError, initializers
from rshop_core import functional as F
from rshop_core.cells import GRUCell, LSTMCell
from rshop_core.layers import Dense

from .conftest import assert_close, harness, native, reference, run
from .tolerances import FORWARD_ATOL

TOL = FORWARD_ATOL["float32"]
RNG = np.random.default_rng(12)
V = RNG.standard_normal((4, 20))  # a decoder's input vector
X = RNG.standard_normal((3, 6, 3))  # (batch, T, features)


def _decoder(**opts):
    """RecurrentShop's docs/decoder.md example: a (B, 20) vector decoded for 10 steps of 25 units."""
    v, s = Input((20,), name="v"), Input((25,), name="s")
    s_new = Dense(25, activation="tanh", name="d")(F.concat([v, s]))
    return RecurrentModel(
        input=v, initial_states=[s], output=s_new, final_states=[s_new], decode=True, output_length=10, seed=0, **opts
    )


DECODER, DECODER_LAST = _decoder(), _decoder(return_sequences=False)


def test_decode_returns_the_sequence_by_default(engine):
    want = reference(DECODER, V)
    assert want[0].shape == (4, 10, 25)  # RecurrentShop's (B, 10, 25)
    assert_close(run(DECODER, engine, V), want, TOL, f"{engine}/decode default")


def test_decode_with_explicit_return_sequences_false_is_the_last_step(engine):
    seq = reference(DECODER, V)[0]
    got = run(DECODER_LAST, engine, V)
    assert_close(got, (seq[:, -1],), TOL, f"{engine}/decode last")


def _gru(**opts):
    return GRUCell(4, input_dim=3).get_layer(seed=2, return_sequences=True, **opts)


STATEFUL, PLAIN = _gru(stateful=True), _gru()


def test_stateful_without_batch_size_takes_the_first_calls_batch(engine):
    full = reference(PLAIN, X)[0]
    layer = STATEFUL.lower(engine)
    assert layer.stateful_batch_size is None
    parts = [run(STATEFUL, engine, X[:, a:b], layer=layer)[0] for a, b in [(0, 2), (2, 5), (5, 6)]]
    assert layer.stateful_batch_size == 3
    assert_close((np.concatenate(parts, 1),), (full,), TOL, f"{engine}/stateful carry")
    with pytest.raises(RshopShapeError) as info:
        run(STATEFUL, engine, X[:2], layer=layer)
    assert str(info.value) == (
        "RecurrentModel 'gru', argument x: expected batch size 3 (stateful, the batch size of its first call), "
        "received batch size 2 (shape (2, 6, 3)). A stateful layer never broadcasts its states: call it with "
        "batches of 3, or lower the model again for another batch size."
    )
    layer.reset_states()  # forgets the states, keeps the size
    assert layer.stateful_batch_size == 3
    with pytest.raises(RshopShapeError, match=r"expected batch size 3 \(stateful, the batch size of its first call\)"):
        run(STATEFUL, engine, X[:1], layer=layer)
    assert_close(run(STATEFUL, engine, X[:, :2], layer=layer), (full[:, :2],), TOL, f"{engine}/after reset")


def test_stateful_batch_fixed_by_input_batch_shape(engine):
    x, h = Input(batch_shape=(2, 3), name="x"), Input((4,), name="h")
    y = Dense(4, activation="tanh", name="d")(F.concat([x, h]))
    model = RecurrentModel(input=x, initial_states=[h], output=y, final_states=[y], stateful=True, seed=5)
    assert model.options.batch_size == 2
    layer = model.lower(engine)
    with pytest.raises(RshopShapeError) as info:
        run(model, engine, X, layer=layer)
    assert "expected batch size 2 (stateful, batch_size=2), received batch size 3" in str(info.value)
    plain = RecurrentModel.clone(model, "plain", stateful=False, batch_size=None)
    assert_close(run(model, engine, X[:2], layer=layer), reference(plain, X[:2]), TOL, f"{engine}/batch_shape")


def test_short_state_initializer_list_pads_with_zeros(engine):
    model = LSTMCell(4, input_dim=3).get_layer(
        seed=3, return_states=True, state_initializer=[initializers.Constant(0.5)]
    )
    assert [type(s.initializer).__name__ for s in model.state_specs] == ["Constant", "Zeros"]
    given = [np.full((3, 4), 0.5), np.zeros((3, 4))]
    assert_close(run(model, engine, X), reference(model, X, initial_state=given), TOL, f"{engine}/padded")


def _list_form_model(listed: bool) -> RecurrentModel:
    cell = LSTMCell(5, name="lc")
    x, h, c = Input((3,), name="x"), Input((5,), name="h"), Input((5,), name="c")
    if listed:
        y, h1, c1 = cell([x, h, c])
    else:
        y, (h1, c1) = cell(x, [h, c])
    return RecurrentModel(input=x, initial_states=[h, c], output=y, final_states=[h1, c1], seed=9, return_states=True)


def test_cell_list_form_is_the_tuple_form(engine):
    listed, plain = _list_form_model(True), _list_form_model(False)
    assert listed.to_json()["graph"] == plain.to_json()["graph"]
    assert_close(run(listed, engine, X), reference(plain, X), TOL, f"{engine}/list form")


def test_symbolic_sequence_call_names_the_keras_layer(engine):
    layer = PLAIN.lower(engine)
    with pytest.raises(RshopConfigError) as info:
        layer(Input((7, 3)))
    msg = str(info.value)
    assert msg.startswith(f"{engine} layer of RecurrentModel 'gru', argument x: expected an array")
    assert "received a symbolic rshop Tensor float32(batch, 7, 3)" in msg
    assert "rshop_backends.keras.RecurrentLayer(model)" in msg and "model.get_cell()" in msg
    h = harness(engine)
    with pytest.raises(RshopConfigError, match=r"initial state #0: expected an array .* rshop Tensor"):
        layer(native(h, X, "float32"), initial_state=[Input((4,))])
