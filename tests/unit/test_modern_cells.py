"""MinGRUCell, MinLSTMCell, RGLRUCell and IndRNNCell on the numpy float64 engine equal their equations
written out by hand; they refuse bad arguments; they survive save and load; their gates read x only."""

from __future__ import annotations

import numpy as np
import pytest

import rshop_core
from rshop_core import RshopConfigError
from rshop_core.cells import IndRNNCell, MinGRUCell, MinLSTMCell, RGLRUCell
from rshop_core.initializers import LogitUniform, RandomNormal, RandomUniform

B, T, D, U = 3, 6, 4, 5
RNG = np.random.default_rng(0)
X = RNG.standard_normal((B, T, D))
H0 = RNG.standard_normal((B, U))


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def softplus(z):
    return np.logaddexp(0.0, z)


def weights(model, cell):
    """The model's weights in float64, by the cell's local weight names."""
    return {k.split("/", 1)[1]: v.astype(np.float64) for k, v in model.get_weights().items() if k.startswith(cell)}


# hand-written steps: (w, x_t, h_{t-1}) -> h_t, each a line-by-line copy of its docstring's equations


def min_gru_step(w, x, h):
    z_pre, h_tilde = np.split(x @ w["kernel"] + w["bias"], 2, axis=-1)
    z = sigmoid(z_pre)
    return (1 - z) * h + z * h_tilde


def min_lstm_step(w, x, h):
    f_pre, i_pre, h_tilde = np.split(x @ w["kernel"] + w["bias"], 3, axis=-1)
    f, i = sigmoid(f_pre), sigmoid(i_pre)
    return f / (f + i) * h + i / (f + i) * h_tilde


def rglru_step(w, x, h, c=8.0):
    a_pre, x_pre, u = np.split(x @ w["kernel"] + w["bias"], 3, axis=-1)
    r, i = sigmoid(a_pre), sigmoid(x_pre)
    log_a = -c * r * softplus(-w["a_param"])
    a = np.exp(log_a)
    return a * h + np.sqrt(np.maximum(1 - a**2, 2.5e-7)) * (i * u)


def indrnn_step(w, x, h, act=lambda z: np.maximum(z, 0.0)):
    return act(x @ w["kernel"] + w["recurrent_kernel"] * h + w["bias"])


BIAS = RandomNormal(0.0, 0.7)
CELLS = {
    "min_gru": (lambda: MinGRUCell(U, input_dim=D, bias_initializer=BIAS), "min_gru_cell", min_gru_step),
    "min_lstm": (lambda: MinLSTMCell(U, input_dim=D, bias_initializer=BIAS), "min_lstm_cell", min_lstm_step),
    "rglru": (lambda: RGLRUCell(U, input_dim=D, bias_initializer=BIAS), "rglru_cell", rglru_step),
    "rglru_c2": (
        lambda: RGLRUCell(U, input_dim=D, c=2.0, bias_initializer=BIAS),
        "rglru_cell",
        lambda w, x, h: rglru_step(w, x, h, c=2.0),
    ),
    "indrnn": (
        lambda: IndRNNCell(U, input_dim=D, bias_initializer=BIAS, recurrent_initializer=RandomUniform(-1.0, 1.0)),
        "ind_rnn_cell",
        indrnn_step,
    ),
    "indrnn_tanh": (
        lambda: IndRNNCell(U, input_dim=D, activation="tanh", bias_initializer=BIAS),
        "ind_rnn_cell",
        lambda w, x, h: indrnn_step(w, x, h, act=np.tanh),
    ),
}


def hand_loop(step, w, x, h):
    ys = []
    for t in range(x.shape[1]):
        h = step(w, x[:, t], h)
        ys.append(h)
    return np.stack(ys, axis=1), h


@pytest.mark.parametrize("name", sorted(CELLS))
@pytest.mark.parametrize("start", ["zeros", "given"])
def test_numpy_float64_equals_hand_written_loop(name, start):
    make, cell, step = CELLS[name]
    model = make().get_layer(seed=4, return_sequences=True, return_states=True)
    w = weights(model, cell)
    h0 = np.zeros((B, U)) if start == "zeros" else H0
    want_y, want_h = hand_loop(step, w, X, h0)
    layer = model.lower("numpy", "float64")
    y, h = layer(X, initial_state=None if start == "zeros" else [H0])
    assert y.shape == (B, T, U) and h.shape == (B, U)
    np.testing.assert_allclose(y, want_y, rtol=0, atol=1e-12)
    np.testing.assert_allclose(h, want_h, rtol=0, atol=1e-12)
    assert float(np.max(np.abs(want_y))) > 1e-2  # the comparison is not between two near-zero arrays


def test_weight_layouts():
    shapes = {
        name: {k: v.shape for k, v in make().get_layer(seed=0).get_weights().items()}
        for name, (make, _, _) in CELLS.items()
        if name in ("min_gru", "min_lstm", "rglru", "indrnn")
    }
    assert shapes == {
        "min_gru": {"min_gru_cell/kernel": (D, 2 * U), "min_gru_cell/bias": (2 * U,)},
        "min_lstm": {"min_lstm_cell/kernel": (D, 3 * U), "min_lstm_cell/bias": (3 * U,)},
        "rglru": {"rglru_cell/kernel": (D, 3 * U), "rglru_cell/bias": (3 * U,), "rglru_cell/a_param": (U,)},
        "indrnn": {
            "ind_rnn_cell/kernel": (D, U),
            "ind_rnn_cell/recurrent_kernel": (U,),
            "ind_rnn_cell/bias": (U,),
        },
    }


def test_no_bias():
    m = MinGRUCell(U, input_dim=D, use_bias=False).get_layer(seed=1, return_sequences=True)
    assert list(m.get_weights()) == ["min_gru_cell/kernel"]
    w = weights(m, "min_gru_cell") | {"bias": np.zeros(2 * U)}
    np.testing.assert_allclose(m.lower("numpy", "float64")(X), hand_loop(min_gru_step, w, X, np.zeros((B, U)))[0])


def test_rglru_decay_starts_in_paper_range():
    """Lambda starts with a = sigmoid(Lambda) uniform in [0.9, 0.999] (Griffin's initialisation)."""
    m = RGLRUCell(2000, input_dim=1).get_layer(seed=2)
    a = sigmoid(m.get_weights()["rglru_cell/a_param"].astype(np.float64))
    assert a.min() >= 0.9 - 1e-6 and a.max() <= 0.999 + 1e-6
    # uniform on [0.9, 0.999]: mean 0.9495, standard error of the mean 0.0286 / sqrt(2000) = 0.00064
    assert abs(a.mean() - 0.9495) < 0.003
    assert abs(np.mean(a < 0.9495) - 0.5) < 0.05  # half below the midpoint: uniform in a, not in Lambda
    assert m.params["rglru_cell/a_param"].initializer == LogitUniform(0.9, 0.999)


def test_logit_uniform_values():
    v = LogitUniform(0.2, 0.3)((4000,), "float64", np.random.default_rng(0))
    p = sigmoid(v)
    assert p.min() >= 0.2 and p.max() <= 0.3
    np.testing.assert_allclose(np.quantile(p, [0.25, 0.5, 0.75]), [0.225, 0.25, 0.275], atol=0.005)
    assert rshop_core.initializers.get({"name": "logit_uniform", "minval": 0.2, "maxval": 0.3}) == LogitUniform(
        0.2, 0.3
    )


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: MinGRUCell(0), "MinGRUCell 'min_gru_cell': expected units > 0, received 0."),
        (lambda: MinLSTMCell(4, input_dim=-2), "MinLSTMCell 'min_lstm_cell': expected input_dim > 0 or None"),
        (lambda: MinGRUCell(4, dropout=1.0), "MinGRUCell 'min_gru_cell' dropout: expected a rate in [0, 1)"),
        (
            lambda: MinLSTMCell(4, kernel_initializer="nope"),
            "MinLSTMCell 'min_lstm_cell' kernel_initializer: expected an initializer in",
        ),
        (
            lambda: RGLRUCell(4, c=0),
            "RGLRUCell 'rglru_cell' c: expected a finite number > 0 (8 in Griffin), received 0",
        ),
        (lambda: RGLRUCell(4, c=True), "received True"),
        (lambda: RGLRUCell(4, a_regularizer="l3"), "RGLRUCell 'rglru_cell' a_regularizer: expected None, 'l1'"),
        (lambda: RGLRUCell(4, a_initializer=7), "RGLRUCell 'rglru_cell' a_initializer: expected an initializer in"),
        (lambda: IndRNNCell(4, activation="celu"), "IndRNNCell 'ind_rnn_cell' activation: expected an activation in"),
        (
            lambda: IndRNNCell(4, recurrent_dropout=-0.1),
            "IndRNNCell 'ind_rnn_cell' recurrent_dropout: expected a rate in [0, 1), received -0.1.",
        ),
        (lambda: IndRNNCell(4, recurent_initializer="zeros"), "Did you mean 'recurrent_initializer'?"),
        (lambda: MinGRUCell(4, recurrent_dropout=0.1), "keyword 'recurrent_dropout': expected one of the keywords"),
        (lambda: LogitUniform(0.0, 0.5), "LogitUniform: expected 0 < minval <= maxval < 1, received minval=0.0"),
        (lambda: LogitUniform(0.9, 0.5), "LogitUniform: expected 0 < minval <= maxval < 1, received minval=0.9"),
    ],
)
def test_refusals(make, message):
    with pytest.raises(RshopConfigError) as e:
        make()
    assert type(e.value) is RshopConfigError
    assert message in str(e.value)


@pytest.mark.parametrize("name", ["min_gru", "min_lstm", "rglru", "indrnn"])
def test_save_load_round_trip(tmp_path, name):
    make, _, _ = CELLS[name]
    model = make().get_layer(seed=9, return_sequences=True)
    path = model.save(tmp_path / f"{name}.rshop")
    back = rshop_core.load(path)
    assert back.params == model.params  # shapes, dtypes, initializers (LogitUniform included)
    for k, v in model.get_weights().items():
        np.testing.assert_array_equal(back.get_weights()[k], v)
    np.testing.assert_array_equal(back.lower("numpy", "float64")(X), model.lower("numpy", "float64")(X))


def one_step(model, x, h):
    """h_1, (batch, units), from a one-step run of ``model`` started at ``h``."""
    return model.lower("numpy", "float64")(x[:, :1], initial_state=[h]).reshape(h.shape)


@pytest.mark.parametrize("name", ["min_gru", "min_lstm", "rglru"])
def test_new_state_is_affine_in_old(name):
    """f(x, a h1 + (1 - a) h2) = a f(x, h1) + (1 - a) f(x, h2) for any a: no gate reads h."""
    model = CELLS[name][0]().get_layer(seed=3)
    h1, h2 = RNG.standard_normal((2, B, U)) * 3
    alpha = 2.7  # outside [0, 1]: affine, not merely convex
    left = one_step(model, X, alpha * h1 + (1 - alpha) * h2)
    right = alpha * one_step(model, X, h1) + (1 - alpha) * one_step(model, X, h2)
    np.testing.assert_allclose(left, right, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", ["indrnn", "indrnn_tanh"])
def test_indrnn_jacobian_is_diagonal(name):
    """Moving one unit's h_{t-1} moves only that unit's h_t; IndRNN is nonlinear in h (not affine)."""
    model = CELLS[name][0]().get_layer(seed=3)
    base = one_step(model, X, H0)
    for j in range(U):
        moved = H0.copy()
        moved[:, j] += 0.3
        delta = one_step(model, X, moved) - base
        np.testing.assert_array_equal(np.delete(delta, j, axis=1), 0.0)
    h1, h2 = H0, -H0
    mid = one_step(model, X, 0.5 * (h1 + h2))
    assert float(np.max(np.abs(mid - 0.5 * (one_step(model, X, h1) + one_step(model, X, h2))))) > 1e-3


@pytest.mark.parametrize("cls", [MinGRUCell, MinLSTMCell, RGLRUCell, IndRNNCell])
def test_dropout_is_identity_at_inference(cls):
    plain = cls(U, input_dim=D).get_layer(seed=5, return_sequences=True)
    dropped = cls(U, input_dim=D, dropout=0.5).get_layer(seed=5, return_sequences=True)
    assert sorted(plain.get_weights()) == sorted(dropped.get_weights())
    assert any(n.op == "dropout" for n in dropped.graph.nodes)
    np.testing.assert_array_equal(dropped.lower("numpy", "float64")(X), plain.lower("numpy", "float64")(X))


def _example_module():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "examples" / "diagonal_gru.py"
    spec = importlib.util.spec_from_file_location("diagonal_gru_example", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_example_diagonal_gru():
    """examples/diagonal_gru.py: its cell equals its docstring's equations, and its Jacobian is diagonal."""
    example = _example_module()
    model = example.DiagonalGRUCell(U, input_dim=D).get_layer(seed=2, return_sequences=True)
    w = weights(model, "diagonal_gru_cell")
    a_z, a_r, a_n = w["recurrent_diag"]

    def step(w, x, h):
        x_z, x_r, x_n = np.split(x @ w["kernel"] + w["bias"], 3, axis=-1)
        z, r = sigmoid(x_z + a_z * h), sigmoid(x_r + a_r * h)
        n = np.tanh(x_n + r * (a_n * h))
        return z * h + (1 - z) * n

    y = model.lower("numpy", "float64")(X, initial_state=[H0])
    np.testing.assert_allclose(y, hand_loop(step, w, X, H0)[0], rtol=0, atol=1e-12)
    base = one_step(model, X, H0)
    for j in range(U):
        moved = H0.copy()
        moved[:, j] -= 0.5
        delta = one_step(model, X, moved) - base
        assert np.all(delta[:, j] != 0.0)
        np.testing.assert_array_equal(np.delete(delta, j, axis=1), 0.0)
    assert example.main(["--engine", "numpy"]) < 1e-5  # float32 numpy vs float64: the script's own check
