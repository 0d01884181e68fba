"""rshop_core.convert with Keras 3 (whatever KERAS_BACKEND is): the converted model computes what the
Keras layer computes on every engine under test, round trips keep the weights exactly, and what rshop
cannot express is refused."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras", reason="keras is not installed in this session: converter tests need it")

from conformance.conftest import run  # noqa: E402  (tests/ is on sys.path: pytest's rootdir-less import)
from rshop_core import Bidirectional, RecurrentModel, RecurrentSequential  # noqa: E402
from rshop_core.cells import GRUCell, LSTMCell  # noqa: E402
from rshop_core.convert import SequenceStack, from_keras, to_keras  # noqa: E402
from rshop_core.errors import RshopConfigError  # noqa: E402

ATOL = 1e-5
KINDS = {
    "simple_tanh": lambda **k: keras.layers.SimpleRNN(5, **k),
    "simple_relu": lambda **k: keras.layers.SimpleRNN(5, activation="relu", **k),
    "gru_reset_after": lambda **k: keras.layers.GRU(5, reset_after=True, **k),
    "gru_reset_before": lambda **k: keras.layers.GRU(5, reset_after=False, **k),
    "lstm": lambda **k: keras.layers.LSTM(5, **k),
}


def built(layer, features=4, seed=0):
    """``layer`` built for ``features`` inputs, with random non-zero biases."""
    keras.utils.set_random_seed(seed)
    if not layer.built:
        layer.build((None, None, features))
    rng = np.random.default_rng(seed)
    layer.set_weights(
        [
            rng.uniform(-0.5, 0.5, w.shape).astype("float32") if "bias" in v.path else w
            for w, v in zip(layer.get_weights(), layer.weights)
        ]
    )
    return layer


def data(features=4):
    return np.random.default_rng(1).standard_normal((3, 6, features)).astype("float32")


def keras_run(layer, x):
    out = layer(x)
    return tuple(keras.ops.convert_to_numpy(o) for o in (out if isinstance(out, (list, tuple)) else [out]))


def assert_same(got, want, what):
    assert len(got) == len(want), f"{what}: {len(got)} results, expected {len(want)}"
    for i, (g, w) in enumerate(zip(got, want)):
        assert g.shape == w.shape, f"{what} #{i}: {g.shape} vs {w.shape}"
        err = float(np.max(np.abs(g - w)))
        assert err <= ATOL, f"{what} #{i}: max abs error {err:.3g}"


def same_weights(a, b):
    wa, wb = a.get_weights(), b.get_weights()
    return len(wa) == len(wb) and all(x.shape == y.shape and np.array_equal(x, y) for x, y in zip(wa, wb))


@pytest.mark.parametrize("use_bias", [True, False], ids=["bias", "no_bias"])
@pytest.mark.parametrize("go_backwards", [False, True], ids=["forwards", "backwards"])
@pytest.mark.parametrize("return_state", [False, True], ids=["no_state", "state"])
@pytest.mark.parametrize("return_sequences", [False, True], ids=["last", "seq"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_from_keras_matches_keras(engine, kind, return_sequences, return_state, go_backwards, use_bias):
    layer = built(
        KINDS[kind](
            return_sequences=return_sequences, return_state=return_state, go_backwards=go_backwards, use_bias=use_bias
        )
    )
    model = from_keras(layer)
    assert isinstance(model, RecurrentModel)
    x = data()
    assert_same(run(model, engine, x), keras_run(layer, x), f"{kind} on {engine}")
    assert same_weights(to_keras(model), layer)


@pytest.mark.parametrize("return_state", [False, True], ids=["no_state", "state"])
@pytest.mark.parametrize("return_sequences", [False, True], ids=["last", "seq"])
@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave", None], ids=str)
@pytest.mark.parametrize("kind", ["simple_tanh", "gru_reset_after", "gru_reset_before", "lstm"])
def test_bidirectional_matches_keras(engine, kind, merge_mode, return_sequences, return_state):
    layer = built(
        keras.layers.Bidirectional(
            KINDS[kind](return_sequences=return_sequences, return_state=return_state), merge_mode=merge_mode
        )
    )
    model = from_keras(layer)
    assert isinstance(model, Bidirectional) and model.merge_mode == merge_mode
    x = data()
    assert_same(run(model, engine, x), keras_run(layer, x), f"bidirectional {kind} {merge_mode} on {engine}")
    back = to_keras(model)
    assert isinstance(back, keras.layers.Bidirectional) and back.merge_mode == merge_mode
    assert same_weights(back, layer)


def test_bidirectional_of_backwards_layer(engine):
    layer = built(
        keras.layers.Bidirectional(
            keras.layers.LSTM(5, return_sequences=True, go_backwards=True),
            backward_layer=keras.layers.LSTM(5, return_sequences=True),
        )
    )
    x = data()
    assert_same(run(from_keras(layer), engine, x), keras_run(layer, x), "forward layer going backwards")


def test_stack_of_unidirectional_layers_is_a_recurrent_sequential(engine):
    stack = keras.Sequential(
        [
            keras.Input((None, 4)),
            keras.layers.GRU(5, return_sequences=True),
            keras.layers.LSTM(3, return_sequences=True),
            keras.layers.SimpleRNN(2),
        ]
    )
    built(stack)
    model = from_keras(stack)
    assert isinstance(model, RecurrentSequential)
    x = data()
    assert_same(run(model, engine, x), keras_run(stack, x), f"stack on {engine}")
    back = to_keras(model)
    assert isinstance(back, keras.Sequential) and same_weights(back, stack)
    assert_same(keras_run(back, x), keras_run(stack, x), "stack back in keras")


@pytest.mark.parametrize("last_state", [False, True], ids=["no_state", "last_state"])
def test_stack_with_bidirectional_and_backwards_layers(engine, last_state):
    items = [
        keras.layers.Bidirectional(keras.layers.GRU(5, return_sequences=True), merge_mode="sum"),
        keras.layers.LSTM(4, return_sequences=True, go_backwards=True),
        keras.layers.Bidirectional(keras.layers.SimpleRNN(3, return_sequences=True, return_state=last_state)),
    ]
    x = data()
    inputs = keras.Input((None, 4))
    y = inputs
    for item in items:
        y = item(y)
    model = from_keras(items)
    assert isinstance(model, SequenceStack)
    want, value = [], x
    for item in items:
        want = keras_run(item, value)
        value = want[0]
    assert_same(run(model, engine, x), want, f"stack on {engine}")
    if not last_state:
        back = to_keras(model)
        assert isinstance(back, keras.Sequential) and same_weights(back, keras.Sequential([inputs, *items]))


def test_dropout_and_regularizers_carry_over(engine):
    layer = built(
        keras.layers.LSTM(
            5,
            dropout=0.25,
            recurrent_dropout=0.1,
            return_sequences=True,
            kernel_regularizer=keras.regularizers.L2(0.01),
            bias_regularizer=keras.regularizers.L1L2(0.1, 0.2),
        )
    )
    model = from_keras(layer)
    x = data()
    assert_same(run(model, engine, x), keras_run(layer, x), "inference with dropout rates")
    assert [p.regularizer for p in model.param_specs.values()] == [
        {"l1": 0.0, "l2": 0.01},
        None,
        {"l1": 0.1, "l2": 0.2},
    ]
    back = to_keras(model)
    assert same_weights(back, layer)
    assert (back.dropout, back.recurrent_dropout) == (0.25, 0.1)
    assert back.cell.kernel_regularizer.l2 == pytest.approx(0.01)


@pytest.mark.parametrize(
    "model",
    [
        lambda: GRUCell(5, input_dim=4, reset_after=False, activation="softsign").get_layer(
            seed=0, return_sequences=True
        ),
        lambda: LSTMCell(5, input_dim=4, recurrent_activation="hard_sigmoid").get_layer(
            seed=0, go_backwards=True, return_states=True
        ),
    ],
    ids=["gru", "lstm"],
)
def test_rshop_models_to_keras(model):
    m = model()
    layer = to_keras(m)
    x = data()
    assert_same(keras_run(layer, x), run(m, "numpy", x), "rshop -> keras")
    local = lambda w: {k.rsplit("/", 1)[-1]: v for k, v in w.items()}  # the cell's name may differ
    w1, w2 = local(m.get_weights()), local(from_keras(layer).get_weights())
    assert sorted(w1) == sorted(w2) and all(np.array_equal(w1[k], w2[k]) for k in w1)


@pytest.mark.parametrize(
    "make, option",
    [
        (lambda: keras.layers.LSTM(5, stateful=True), "stateful"),
        (  # keras' own NonNeg converts (tests/test_convert_keras_ops_wired.py); a custom class is code: refused
            lambda: keras.layers.GRU(
                5, recurrent_constraint=type("Mine", (keras.constraints.Constraint,), {"__call__": lambda s, w: w})()
            ),
            "recurrent_constraint=.*Mine is not supported",
        ),
        (lambda: keras.layers.GRU(5, activity_regularizer="l2"), "activity_regularizer"),  # SimpleRNN drops it
        (lambda: keras.layers.SimpleRNN(5, activation="celu"), "activation"),
        (lambda: keras.layers.Dense(5), "expected a keras SimpleRNN"),
        (
            lambda: keras.layers.Bidirectional(
                keras.layers.LSTM(5), backward_layer=keras.layers.LSTM(4, go_backwards=True)
            ),
            "backward_layer",
        ),
    ],
    ids=["stateful", "constraint", "activity_regularizer", "activation", "dense", "backward_layer"],
)
def test_from_keras_refuses(make, option):
    layer = make()
    layer.build((2, 6, 4))
    with pytest.raises(RshopConfigError, match=option):
        from_keras(layer)


def test_from_keras_refuses_unbuilt_layers_and_bad_stacks():
    with pytest.raises(RshopConfigError, match="built"):
        from_keras(keras.layers.LSTM(5))
    with pytest.raises(RshopConfigError, match="return_sequences=True"):
        from_keras([built(keras.layers.LSTM(5)), built(keras.layers.LSTM(5), features=5)])


def test_to_keras_refuses():
    with pytest.raises(RshopConfigError, match="return_states"):
        to_keras(RecurrentSequential(seed=0, return_states=True).add(LSTMCell(5, input_dim=4)).add(LSTMCell(5)))
    with pytest.raises(RshopConfigError, match="state_initializer"):
        to_keras(LSTMCell(5, input_dim=4).get_layer(seed=0, state_initializer="ones"))
