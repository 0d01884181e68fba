"""What each composition feature means, checked against independent computations on every engine."""

from __future__ import annotations

import numpy as np
import pytest

from rshop_core import Input, RecurrentModel, RecurrentSequential, initializers
from rshop_core import functional as F
from rshop_core.cells import GRUCell, LSTMCell
from rshop_core.errors import RshopConfigError, RshopShapeError
from rshop_core.layers import Activation, Dense, Dropout, add

from .composition_cases import LENGTHS, MASK, bidirectional, decode_model, readout_model, regularized_model
from .conftest import harness, native, run
from .tolerances import FORWARD_ATOL

TOL = FORWARD_ATOL["float32"]
rng = np.random.default_rng(7)
X = rng.standard_normal((3, 6, 3))
GT = rng.standard_normal((3, 6, 2))


def manual_readout(model, x, feed):
    """The readout model's loop in numpy: ``feed(t, y_prev)`` gives the readout of step t."""
    w = model.get_weights()
    h, y = np.zeros((x.shape[0], 4)), None
    ys = []
    for t in range(x.shape[1]):
        r = feed(t, y)
        h = np.tanh(np.concatenate([x[:, t], h, r], -1) @ w["core/kernel"] + w["core/bias"])
        y = h @ w["out/kernel"] + w["out/bias"]
        ys.append(y)
    return np.stack(ys, 1)


def test_teacher_forcing_feeds_previous_target(engine):
    model = readout_model(return_sequences=True)
    got = run(model, engine, X, ground_truth=GT, training=True)[0]
    want = manual_readout(model, X, lambda t, y: np.zeros((3, 2)) if t == 0 else GT[:, t - 1])
    assert np.abs(got - want).max() <= TOL


def test_teacher_forcing_never_sees_the_current_target(engine):
    """Regression (RecurrentShop fed step t its own target): changing ground_truth[t] changes steps > t only."""
    model = readout_model(return_sequences=True)
    layer = model.lower(engine)
    base = run(model, engine, X, layer=layer, ground_truth=GT, training=True)[0]
    for t in range(6):
        gt = GT.copy()
        gt[:, t] += 10.0
        moved = run(model, engine, X, layer=layer, ground_truth=gt, training=True)[0]
        assert np.abs(moved[:, : t + 1] - base[:, : t + 1]).max() == 0.0, f"step <= {t} saw ground_truth[{t}]"
        if t < 5:
            assert np.abs(moved[:, t + 1] - base[:, t + 1]).max() > 1e-3


def test_inference_feeds_back_own_output(engine):
    model = readout_model(return_sequences=True)
    got = run(model, engine, X)[0]  # no ground truth needed at inference
    want = manual_readout(model, X, lambda t, y: np.zeros((3, 2)) if t == 0 else y)
    assert np.abs(got - want).max() <= TOL


def test_decode_equals_input_repeated(engine):
    model = decode_model(return_sequences=True)
    v = rng.standard_normal((3, 5))
    got = run(model, engine, v)[0]
    g = model.graph
    plain = RecurrentModel.clone(model, "plain", decode=False, output_length=None)
    want = run(plain, engine, np.repeat(v[:, None], 4, axis=1))[0]
    assert got.shape == (3, 4, 3) and g is model.graph
    assert np.abs(got - want).max() <= TOL


def test_mask_equals_truncation(engine):
    model = GRUCell(5, input_dim=3).get_layer(seed=1, return_sequences=True, return_states=True)
    y, h = run(model, engine, X, mask=MASK)
    zero = GRUCell(5, input_dim=3).get_layer(seed=1, return_sequences=True, zero_output_for_mask=True)
    yz = run(zero, engine, X, sequence_lengths=LENGTHS)[0]
    for b, n in enumerate(LENGTHS):
        yt, ht = run(model, engine, X[b : b + 1, :n])
        assert np.abs(y[b, :n] - yt[0]).max() <= TOL and np.abs(h[b] - ht[0]).max() <= TOL
        assert np.all(np.abs(y[b, n:] - yt[0, -1]) <= TOL)  # masked steps hold the last output
        assert np.all(yz[b, n:] == 0) and np.abs(yz[b, :n] - yt[0]).max() <= TOL


def test_stateful_continues_and_resets(engine):
    cell = GRUCell(4, input_dim=3)
    full = run(cell.get_layer(seed=2, return_sequences=True), engine, X)[0]
    model = cell.get_layer(seed=2, return_sequences=True, stateful=True, batch_size=3)
    layer = model.lower(engine)
    parts = [run(model, engine, X[:, a:b], layer=layer)[0] for a, b in [(0, 2), (2, 5), (5, 6)]]
    assert np.abs(np.concatenate(parts, 1) - full).max() <= TOL
    layer.reset_states()
    assert np.abs(run(model, engine, X[:, :2], layer=layer)[0] - full[:, :2]).max() <= TOL
    with pytest.raises(RshopShapeError, match=r"expected batch size 3 .* never broadcasts"):
        run(model, engine, X[:2], layer=layer)


def test_learned_and_random_initial_states(engine):
    model = LSTMCell(4, input_dim=3).get_layer(
        seed=3,
        return_states=True,
        state_initializer=[initializers.Learned("glorot_uniform"), initializers.RandomNormal(0.0, 0.5)],
    )
    w = {k.split("/")[-1]: v.astype(np.float64) for k, v in model.get_weights().items()}
    h0 = np.broadcast_to(w["h"], (3, 4))
    c0 = initializers.RandomNormal(0.0, 0.5)((3, 4), "float64", initializers.rng_for(3, "initial_state/c"))
    z = X[:, 0] @ w["kernel"] + h0 @ w["recurrent_kernel"] + w["bias"]
    sig = lambda v: 1 / (1 + np.exp(-v))
    c = sig(z[:, 4:8]) * c0 + sig(z[:, :4]) * np.tanh(z[:, 8:12])
    h = sig(z[:, 12:]) * np.tanh(c)
    _y, h_got, c_got = run(model, engine, X[:, :1])
    assert np.abs(h_got - h).max() <= TOL and np.abs(c_got - c).max() <= TOL


def test_dropout_is_variational_and_off_at_inference(engine):
    x = Input((3,), name="x")
    h = Input((3,), name="h")
    y = Dropout(0.5)(x)
    model = RecurrentModel(input=x, initial_states=[h], output=y, final_states=[h], return_sequences=True, seed=4)
    ones = np.ones((3, 6, 3))
    train = run(model, engine, ones, training=True)[0]
    assert set(np.unique(train)) <= {0.0, 2.0} and 0 < (train == 0).sum() < train.size
    assert np.all(train == train[:, :1])  # one mask per sequence: the same at every step
    assert np.all(run(model, engine, ones)[0] == 1.0)
    assert np.array_equal(train, run(model, "numpy", ones, training=True)[0])  # seeded: the same masks everywhere


def test_regularization_loss(engine):
    model = regularized_model()
    w = model.get_weights()
    want = (
        0.01 * np.abs(w["lstm_cell/kernel"]).sum()
        + 0.02 * np.square(w["lstm_cell/kernel"]).sum()
        + 0.01 * np.square(w["lstm_cell/recurrent_kernel"]).sum()
        + 0.01 * np.abs(w["lstm_cell/bias"]).sum()
    )
    got = harness(engine).to_numpy(model.lower(engine).regularization_loss())
    assert abs(float(got) - want) <= 1e-5 * max(1.0, want)


def test_bidirectional_equals_two_passes(engine):
    bi = bidirectional("concat", return_sequences=True)
    x = rng.standard_normal((3, 6, 4))
    got = run(bi, engine, x, sequence_lengths=LENGTHS)[0]
    for b, n in enumerate(LENGTHS):
        fwd = run(bi.forward, engine, x[b : b + 1, :n])[0][0]
        bwd = run(bi.backward, engine, x[b : b + 1, :n])[0][0][::-1]  # processing order -> time order
        assert np.abs(got[b, :n] - np.concatenate([fwd, bwd], -1)).max() <= TOL


def test_recurrentshop_documented_shapes(engine):
    x_t, h_tm1 = Input((5,)), Input((10,))
    h_t = Activation("tanh")(add([Dense(10)(x_t), Dense(10, use_bias=False)(h_tm1)]))
    rnn = RecurrentModel(input=x_t, initial_states=[h_tm1], output=h_t, final_states=[h_t], seed=0)
    assert run(rnn, engine, rng.standard_normal((1, 7, 5)))[0].shape == (1, 10)
    seq_rnn = RecurrentModel(
        input=x_t, initial_states=[h_tm1], output=h_t, final_states=[h_t], seed=0, return_sequences=True
    )
    assert run(seq_rnn, engine, rng.standard_normal((1, 7, 5)))[0].shape == (1, 7, 10)
    v, s = Input((20,)), Input((25,))
    s_new = Dense(25, activation="tanh")(F.concat([v, s]))
    dec = RecurrentModel(
        input=v,
        initial_states=[s],
        output=s_new,
        final_states=[s_new],
        decode=True,
        output_length=10,
        return_sequences=True,
        seed=0,
    )
    assert run(dec, engine, rng.standard_normal((2, 20)))[0].shape == (2, 10, 25)
    stack = RecurrentSequential(state_sync=True, return_states=True, seed=0)
    for _ in range(3):
        stack.add(LSTMCell(8, input_dim=8))
    assert len(run(stack, engine, rng.standard_normal((2, 4, 8)))) == 3  # output + two shared states


def test_encoder_decoder_states_flow(engine):
    """An encoder's final states initialise a state-synced decoder with readout and teacher forcing."""
    encoder = LSTMCell(6, input_dim=4).get_layer(seed=5, return_states=True)
    decoder = RecurrentSequential(state_sync=True, readout="add", teacher_force=True, return_sequences=True, seed=6)
    decoder.add(LSTMCell(6, input_dim=3)).add(LSTMCell(6, input_dim=6)).add(Dense(3))
    src, tgt = rng.standard_normal((2, 5, 4)), rng.standard_normal((2, 4, 3))
    _, h, c = run(encoder, engine, src)
    got = run(decoder, engine, np.zeros((2, 4, 3)), initial_state=[h, c], ground_truth=tgt, training=True)[0]
    _, h64, c64 = run(encoder, "numpy", src, "float64")
    want = run(
        decoder, "numpy", np.zeros((2, 4, 3)), "float64", initial_state=[h64, c64], ground_truth=tgt, training=True
    )[0]
    assert np.abs(got - want).max() <= 2 * TOL


def test_wiring_errors():
    x, h, r = Input((3,)), Input((4,)), Input((5,))
    hn = Dense(4)(x)
    with pytest.raises(RshopShapeError, match=r"readout_input: expected the type of the output float32\(batch, 4\)"):
        RecurrentModel(input=x, initial_states=[h], output=hn, final_states=[hn], readout_input=r)
    with pytest.raises(RshopConfigError, match="expected readout_input with teacher_force=True"):
        RecurrentModel(input=x, initial_states=[h], output=hn, final_states=[hn], teacher_force=True)
    with pytest.raises(RshopShapeError, match=r"state_sync.*expected every cell to have the states"):
        s = RecurrentSequential(state_sync=True)
        s.add(LSTMCell(4, input_dim=3)).add(GRUCell(4)).build()


@pytest.mark.parametrize(
    "call,cls,fragment",
    [
        ({"ground_truth": GT[:, :4], "training": True}, RshopShapeError, "expected 6 time steps (one target per step)"),
        ({"training": True}, RshopConfigError, "expected the targets (batch, time, ...) for a training call"),
        (
            {"initial_readout": np.zeros((3, 3)), "training": False},
            RshopShapeError,
            "initial_readout: expected an array of shape (batch, 2)",
        ),
        (
            {"mask": MASK, "sequence_lengths": LENGTHS, "training": False},
            RshopConfigError,
            "expected mask or sequence_lengths, received both",
        ),
        ({"mask": MASK[:, :4], "training": False}, RshopShapeError, "mask: expected a bool array of shape (3, 6)"),
    ],
)
def test_bad_wiring_calls_same_everywhere(engine, call, cls, fragment):
    model = readout_model()
    h = harness(engine)
    kwargs = {k: native(h, v, "float32") if isinstance(v, np.ndarray) else v for k, v in call.items()}
    with pytest.raises(cls) as info:
        model.lower(engine)(native(h, X, "float32"), **kwargs)
    assert fragment in str(info.value)
    with pytest.raises(cls) as ref:
        model.lower("numpy")(
            X.astype(np.float32),
            **{
                k: np.asarray(v, np.float32) if isinstance(v, np.ndarray) and v.dtype.kind == "f" else v
                for k, v in call.items()
            },
        )
    assert str(info.value) == str(ref.value)


def test_errors_for_features_a_model_lacks(engine):
    h = harness(engine)
    plain = GRUCell(4, input_dim=3).get_layer(seed=0)
    layer = plain.lower(engine)
    with pytest.raises(RshopConfigError, match=r"ground_truth: expected none .*teacher_force=False"):
        layer(native(h, X, "float32"), ground_truth=native(h, GT, "float32"))
    with pytest.raises(RshopConfigError, match="initial_readout: expected none"):
        layer(native(h, X, "float32"), initial_readout=native(h, GT[:, 0], "float32"))
    with pytest.raises(RshopConfigError, match="reset_states: expected a model with stateful=True"):
        layer.reset_states()
    with pytest.raises(RshopConfigError, match="output_length: expected the number of steps to decode"):
        decode_model(output_length=None).lower(engine)(native(h, np.zeros((3, 5)), "float32"))


def test_stateful_training_call_after_call(trainable_engine):
    """Gradients through a stateful layer, call after call (torch: no in-place / backward-twice errors)."""
    h = harness(trainable_engine)
    model = LSTMCell(4, input_dim=3).get_layer(seed=8, stateful=True, batch_size=3, return_sequences=True)
    layer = model.lower(trainable_engine)
    w = np.ones((3, 2, 4), np.float32)
    for a in range(0, 6, 2):
        grads = h.loss_grads(layer, native(h, X[:, a : a + 2], "float32"), w)
        assert all(np.isfinite(g).all() for g in grads.values()) and np.abs(grads["lstm_cell/kernel"]).max() > 0
    assert layer.states is not None and len(layer.states) == 2


def test_nested_states_round_trip(engine):
    """A nested model's flattened states come back with return_states and go in with initial_state."""
    from .composition_cases import nested_model

    model = nested_model(return_sequences=True, return_states=True)
    x = rng.standard_normal((3, 6, 4))
    full = run(model, engine, x)
    first = run(model, engine, x[:, :4])
    second = run(model, engine, x[:, 4:], initial_state=list(first[1:]))
    assert [s.name for s in model.state_specs] == ["stack/lstm/h", "stack/lstm/c", "stack/simple_rnn_cell/h"]
    assert len(full) == 1 + 3
    assert np.abs(np.concatenate([first[0], second[0]], 1) - full[0]).max() <= TOL
    for a, b in zip(second[1:], full[1:]):
        assert np.abs(a - b).max() <= TOL
