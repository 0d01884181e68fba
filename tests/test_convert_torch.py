"""rshop_core.convert with torch.nn: the converted model computes what the torch module computes on
every engine under test, round trips keep the weights, and what rshop cannot express is refused."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is not installed in this session: converter tests need it")

from conformance.conftest import run  # noqa: E402  (tests/ is on sys.path: pytest's rootdir-less import)
from rshop_core import Bidirectional, Input, RecurrentModel, RecurrentSequential  # noqa: E402
from rshop_core import functional as F  # noqa: E402
from rshop_core.cells import GRUCell, LSTMCell, SimpleRNNCell  # noqa: E402
from rshop_core.convert import TorchStack, from_torch, rshop_states, to_torch, torch_states  # noqa: E402
from rshop_core.errors import RshopConfigError  # noqa: E402
from rshop_core.layers import Dense  # noqa: E402

ATOL = 1e-5
KINDS = {
    "rnn_tanh": (torch.nn.RNN, {"nonlinearity": "tanh"}),
    "rnn_relu": (torch.nn.RNN, {"nonlinearity": "relu"}),
    "gru": (torch.nn.GRU, {}),
    "lstm": (torch.nn.LSTM, {}),
}


def make(kind, seed=0, **kwargs):
    cls, extra = KINDS[kind]
    torch.manual_seed(seed)
    module = cls(4, 5, **extra, **kwargs)
    with torch.no_grad():  # non-zero biases of both kinds, so that bias handling is really tested
        for name, p in module.named_parameters():
            if name.startswith("bias"):
                p.uniform_(-0.5, 0.5)
    return module


def data(batch=3, time=6):
    return np.random.default_rng(1).standard_normal((batch, time, 4)).astype("float32")


def torch_run(module, x):
    """torch's (output, h_n[, c_n]) as numpy, output batch-major."""
    xt = torch.from_numpy(x if module.batch_first else np.ascontiguousarray(x.swapaxes(0, 1)))
    with torch.no_grad():
        y, h = module(xt)
    y = y.numpy() if module.batch_first else y.numpy().swapaxes(0, 1)
    return (y, *(t.numpy() for t in (h if isinstance(h, tuple) else (h,))))


def assert_same(got, want, what):
    assert len(got) == len(want), what
    for i, (g, w) in enumerate(zip(got, want)):
        assert g.shape == w.shape, f"{what} #{i}: {g.shape} vs {w.shape}"
        err = float(np.max(np.abs(g - w)))
        assert err <= ATOL, f"{what} #{i}: max abs error {err:.3g}"


@pytest.mark.parametrize("batch_first", [True, False], ids=["batch_first", "time_first"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("kind", list(KINDS))
def test_from_torch_matches_torch(engine, kind, num_layers, bidirectional, bias, batch_first):
    module = make(kind, num_layers=num_layers, bidirectional=bidirectional, bias=bias, batch_first=batch_first)
    model = from_torch(module)
    expected_type = {
        (1, False): RecurrentModel,
        (2, False): RecurrentSequential,
        (1, True): Bidirectional,
        (2, True): TorchStack,
    }[(num_layers, bidirectional)]
    assert isinstance(model, expected_type)
    x = data()
    y, *states = run(model, engine, x)  # rshop is batch-major whatever batch_first says
    want = torch_run(module, x)
    lstm = kind == "lstm"
    got = (y, *torch_states(states, lstm=True)) if lstm else (y, torch_states(states))
    assert_same(got, want, f"{kind} on {engine}")


def test_initial_states_in_torch_layout(engine):
    module = make("lstm", num_layers=2, bidirectional=True, batch_first=True)
    rng = np.random.default_rng(2)
    h0, c0 = (rng.standard_normal((4, 3, 5)).astype("float32") for _ in range(2))
    x = data()
    got = run(from_torch(module), engine, x, initial_state=rshop_states(h0, c0))
    with torch.no_grad():
        y, (h, c) = module(torch.from_numpy(x), (torch.from_numpy(h0), torch.from_numpy(c0)))
    assert_same((got[0], *torch_states(got[1:], lstm=True)), (y.numpy(), h.numpy(), c.numpy()), "initial states")


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("kind", list(KINDS))
def test_round_trips_keep_weights(kind, num_layers, bidirectional):
    module = make(kind, num_layers=num_layers, bidirectional=bidirectional)
    back = to_torch(from_torch(module), batch_first=module.batch_first)
    assert type(back) is type(module) and back.mode == module.mode and back.num_layers == num_layers
    a, b = dict(module.named_parameters()), dict(back.named_parameters())
    assert sorted(a) == sorted(b)
    for name in a:
        if kind == "gru" or not name.startswith("bias"):  # GRU biases map one to one
            assert torch.equal(a[name], b[name]), name
        elif name.startswith("bias_ih"):  # RNN / LSTM: the sum is what both compute, and is kept
            other = name.replace("bias_ih", "bias_hh")
            assert torch.equal(a[name] + a[other], b[name] + b[other]), name
            assert not b[other].any()
    model = from_torch(module)
    again = from_torch(to_torch(model))
    w1, w2 = model.get_weights(), again.get_weights()
    assert sorted(w1) == sorted(w2) and all(np.array_equal(w1[k], w2[k]) for k in w1)


@pytest.mark.parametrize(
    "make_model",
    [
        lambda: SimpleRNNCell(5, input_dim=4, activation="relu").get_layer(seed=1, return_sequences=True),
        lambda: GRUCell(5, input_dim=4, use_bias=False).get_layer(seed=1),
        lambda: LSTMCell(5, input_dim=4).get_layer(seed=1, return_states=True),
        lambda: Bidirectional(GRUCell(5, input_dim=4).get_layer(seed=1, return_sequences=True)),
        lambda: RecurrentSequential(seed=1).add(LSTMCell(5, input_dim=4)).add(LSTMCell(5)),
    ],
    ids=["rnn", "gru", "lstm", "bidirectional", "stack"],
)
def test_rshop_models_to_torch(make_model):
    """Models written with rshop's cells convert too; torch returns every step and state."""
    model = make_model()
    module = to_torch(model)
    x = data()
    y = torch_run(module, x)[0]
    ref = run(model, "numpy", x)[0]
    assert_same((y if model.options.return_sequences else y[:, -1],), (ref,), type(model).__name__)
    again = from_torch(module)
    w = again.get_weights()
    assert sorted(np.concatenate([v.ravel() for v in w.values()]).tolist()) == sorted(
        np.concatenate([v.ravel() for v in model.get_weights().values()]).tolist()
    )


def test_time_first_helper_layouts():
    states = [np.full((2, 3), i, "float32") for i in range(4)]
    h, c = torch_states(states, lstm=True)
    assert h.shape == (2, 2, 3) and (h[1] == 2).all() and (c[1] == 3).all()
    assert all(np.array_equal(a, b) for a, b in zip(rshop_states(h, c), states))
    assert all(np.array_equal(a, b) for a, b in zip(rshop_states(torch_states(states)), states))


@pytest.mark.parametrize(
    "module, option",
    [
        (lambda: torch.nn.LSTM(4, 5, proj_size=3), "proj_size"),
        (lambda: torch.nn.GRU(4, 5, num_layers=2, dropout=0.3), "dropout"),
        (lambda: torch.nn.LSTM(4, 5).double(), "float32"),
        (lambda: torch.nn.Linear(4, 5), "torch.nn.RNN, GRU or LSTM"),
    ],
    ids=["proj_size", "dropout", "float64", "not_rnn"],
)
def test_from_torch_refuses(module, option):
    with pytest.raises(RshopConfigError, match=option):
        from_torch(module())


def _dense_step():
    x, h = Input((4,)), Input((5,))
    h_new = Dense(5, activation="tanh")(x)
    return RecurrentModel(input=x, initial_states=[h], output=h_new, final_states=[h_new], seed=0)


def _cell_plus_extra_op():
    """A SimpleRNNCell's parameters, but a step that computes something else."""
    x, h = Input((4,)), Input((5,))
    y, new = SimpleRNNCell(5)(x, [h])
    return RecurrentModel(input=x, initial_states=[h], output=F.multiply(y, 2.0), final_states=new, seed=0)


@pytest.mark.parametrize(
    "model, option",
    [
        (lambda: GRUCell(5, input_dim=4, reset_after=False).get_layer(seed=0), "reset_after"),
        (lambda: SimpleRNNCell(5, input_dim=4, activation="softsign").get_layer(seed=0), "activation"),
        (lambda: LSTMCell(5, input_dim=4, dropout=0.2).get_layer(seed=0), "dropout"),
        (lambda: LSTMCell(5, input_dim=4, kernel_regularizer="l2").get_layer(seed=0), "regularizers"),
        (lambda: LSTMCell(5, input_dim=4).get_layer(seed=0, go_backwards=True), "go_backwards"),
        (lambda: LSTMCell(5, input_dim=4).get_layer(seed=0, state_initializer="ones"), "state_initializer"),
        (lambda: Bidirectional(LSTMCell(5, input_dim=4).get_layer(seed=0), merge_mode="sum"), "merge_mode"),
        (lambda: RecurrentSequential(seed=0).add(LSTMCell(5, input_dim=4)).add(GRUCell(5)), "kind"),
        (lambda: RecurrentSequential(seed=0).add(LSTMCell(5, input_dim=4)).add(Dense(5)), "items only"),
        (_dense_step, "one built-in cell"),
        (_cell_plus_extra_op, "step graph is not one"),
    ],
    ids=[
        "gru_reset_before",
        "activation",
        "dropout",
        "regularizer",
        "go_backwards",
        "initial_state",
        "merge_mode",
        "mixed_stack",
        "plain_layer",
        "dense_step",
        "cell_plus_op",
    ],
)
def test_to_torch_refuses(model, option):
    with pytest.raises(RshopConfigError, match=option):
        to_torch(model())


def test_importing_convert_imports_no_framework():
    code = (
        "import sys, rshop_core.convert; bad = [m for m in ('torch', 'keras', 'tensorflow', 'jax') "
        "if m in sys.modules]; assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
