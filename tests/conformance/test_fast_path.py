"""torch's fast path: standard cells (and stacks / bidirectional wrappers of them) recognised in
the IR run on torch's fused kernels, with the numbers of the generic loop; anything else runs
the generic loop and says why."""

from __future__ import annotations

import numpy as np
import pytest

from rshop_core import Bidirectional, Input, RecurrentModel, RecurrentSequential
from rshop_core import functional as F
from rshop_core.cells import GRUCell, LSTMCell, SimpleRNNCell
from rshop_core.errors import RshopConfigError, RshopNotImplementedError
from rshop_core.initializers import RandomNormal

from .cases import CASES
from .conftest import as_tuple, assert_close, harness, only_engine, reference, run
from .tolerances import FORWARD_ATOL, GRAD_RTOL

B, T, D = 3, 6, 4
BIAS = RandomNormal(0.0, 0.5)  # non-zero biases, so a misplaced bias shows


def _stack(*cells, **opts):
    seq = RecurrentSequential(seed=5, **opts)
    for c in cells:
        seq.add(c)
    return seq


def hand_lstm(**opts):
    """An LSTM step written by hand with the ops in another order than LSTMCell's."""
    from rshop_core.layers import Layer

    class Weights(Layer):
        def __call__(self, _):
            return (
                self.add_weight("kernel", (D, 20), "glorot_uniform"),
                self.add_weight("recurrent_kernel", (5, 20), "orthogonal"),
                self.add_weight("bias", (20,), BIAS),
            )

    x, h, c = Input((D,), name="x"), Input((5,), name="h"), Input((5,), name="c")
    k, r, b = Weights(name="hand")(x)
    zi, zf, zg, zo = F.split(F.add(F.add(F.matmul(h, r), F.matmul(x, k)), b), 4)  # h @ r first
    c_new = F.add(F.multiply(F.tanh(zg), F.sigmoid(zi)), F.multiply(c, F.sigmoid(zf)))
    h_new = F.multiply(F.tanh(c_new), F.sigmoid(zo))
    return RecurrentModel(input=x, initial_states=[h, c], output=h_new, final_states=[h_new, c_new], seed=6, **opts)


FUSED = {
    "lstm": lambda **o: LSTMCell(5, input_dim=D, bias_initializer=BIAS).get_layer(seed=1, **o),
    "lstm_no_bias": lambda **o: LSTMCell(5, input_dim=D, use_bias=False).get_layer(seed=1, **o),
    "gru": lambda **o: GRUCell(5, input_dim=D, bias_initializer=BIAS).get_layer(seed=2, **o),
    "gru_no_bias": lambda **o: GRUCell(5, input_dim=D, use_bias=False).get_layer(seed=2, **o),
    "rnn_tanh": lambda **o: SimpleRNNCell(5, input_dim=D, bias_initializer=BIAS).get_layer(seed=3, **o),
    "rnn_relu": lambda **o: SimpleRNNCell(5, input_dim=D, activation="relu", bias_initializer=BIAS).get_layer(
        seed=3, **o
    ),
    "lstm_stack": lambda **o: _stack(LSTMCell(5, input_dim=D, bias_initializer=BIAS), LSTMCell(6, input_dim=5), **o),
    "mixed_stack": lambda **o: _stack(
        GRUCell(5, input_dim=D, bias_initializer=BIAS), LSTMCell(3, input_dim=5), SimpleRNNCell(4, input_dim=3), **o
    ),
    "bidirectional_lstm": lambda **o: Bidirectional(
        LSTMCell(5, input_dim=D, bias_initializer=BIAS).get_layer(seed=4, **o), merge_mode="concat"
    ),
    "hand_written_lstm": hand_lstm,
}
OPTIONS = {
    "sequences_states": dict(return_sequences=True, return_states=True),
    "last_backwards": dict(go_backwards=True),
}


@pytest.fixture
def torch_engine(request):
    return only_engine(request, "torch", "the fused fast path")


def _x(seed=0):
    return np.random.default_rng(seed).standard_normal((B, T, D))


def _initial(model, seed=1):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((B,) + s.shape) for s in model.state_specs]


@pytest.mark.parametrize("opts", sorted(OPTIONS))
@pytest.mark.parametrize("case", sorted(FUSED))
def test_fused_matches_reference(torch_engine, case, opts):
    model = FUSED[case](**OPTIONS[opts])
    layer = model.lower("torch")
    assert layer.explain().path.startswith("fused kernel: torch."), str(layer.explain())
    x, s0 = _x(), _initial(model)
    assert_close(
        run(model, "torch", x, layer=layer, initial_state=s0),
        reference(model, x, initial_state=s0),
        FORWARD_ATOL["float32"],
        f"{case}/{opts}",
    )
    assert_close(run(model, "torch", x, layer=layer), reference(model, x), FORWARD_ATOL["float32"], f"{case}/{opts}")


@pytest.mark.parametrize("case", sorted(FUSED))
def test_fused_float64(torch_engine, case):
    model = FUSED[case](return_sequences=True)
    x = _x(2)
    assert_close(run(model, "torch", x, "float64"), reference(model, x), FORWARD_ATOL["float64"], case)


@pytest.mark.parametrize("case", sorted(FUSED))
def test_fused_gradients_equal_generic_loop(torch_engine, case):
    import torch

    model = FUSED[case](return_sequences=True)
    model.lower("numpy")  # builds a RecurrentSequential (its states are known after)
    x = torch.from_numpy(_x(3).astype(np.float32))
    s0 = [torch.from_numpy(a.astype(np.float32)).requires_grad_() for a in _initial(model, 4)]
    w = None
    grads = []
    for fast in (True, False):
        layer = model.lower("torch", fast_path=fast)
        y = as_tuple(layer(x, initial_state=s0))[0]
        if w is None:
            w = torch.from_numpy(np.random.default_rng(5).standard_normal(tuple(y.shape)).astype(np.float32))
        params = dict(layer.named_parameters())
        got = torch.autograd.grad((y * w).sum(), list(params.values()) + s0)
        grads.append({**dict(zip(params, got)), **{f"state{i}": g for i, g in enumerate(got[len(params) :])}})
    fast, slow = grads
    scale = max(1.0, max(float(g.abs().max()) for g in slow.values()))
    for k in slow:
        err = float((fast[k] - slow[k]).abs().max())
        assert err <= GRAD_RTOL["float32"] * scale, f"{case}: d/d {k} off by {err:.3g}"


def test_fused_stateful_carries_states(torch_engine):
    model = LSTMCell(5, input_dim=D, bias_initializer=BIAS).get_layer(
        seed=1, return_sequences=True, stateful=True, batch_size=B
    )
    h = harness("torch")
    layer = model.lower("torch")
    assert layer.explain().path.startswith("fused kernel")
    x = _x(6)
    first = h.to_numpy(layer(h.to_native(x[:, :2], "float32")))
    second = h.to_numpy(layer(h.to_native(x[:, 2:], "float32")))
    want = reference(model.clone("ref", stateful=False, batch_size=None), x)[0]
    assert_close((np.concatenate([first, second], axis=1),), (want,), FORWARD_ATOL["float32"], "stateful")


def _peephole():
    from rshop_core.cells import Cell

    class Peephole(Cell):
        state_names = ("h", "c")

        def step(self, x, states):
            h, c = states
            u = self.units
            z = F.add(
                F.matmul(x, self.add_weight("kernel", (D, 4 * u), "glorot_uniform")),
                F.matmul(h, self.add_weight("recurrent_kernel", (u, 4 * u), "orthogonal")),
            )
            zi, zf, zg, zo = F.split(z, 4)
            p = self.add_weight("peephole", (u,), "ones")
            c_new = F.add(F.multiply(F.sigmoid(F.add(zf, F.multiply(p, c))), c), F.multiply(F.sigmoid(zi), F.tanh(zg)))
            h_new = F.multiply(F.sigmoid(zo), F.tanh(c_new))
            return h_new, [h_new, c_new]

    return Peephole(5, input_dim=D).get_layer(seed=7)


NOT_FUSED = {  # model, call flags for explain, words of the reason
    "custom_cell": (_peephole, {}, "not a standard"),
    "masked": (lambda: FUSED["lstm"](), {"masked": True}, "scans mask"),
    "dropout_training": (
        lambda: LSTMCell(5, input_dim=D, dropout=0.5).get_layer(seed=1),
        {"training": True},
        "constants",
    ),
    "readout": (lambda: CASES["readme"].build(), {}, "not a standard"),
    "state_sync": (
        lambda: (
            RecurrentSequential(state_sync=True, seed=1).add(LSTMCell(5, input_dim=5)).add(LSTMCell(5, input_dim=5))
        ),
        {},
        "not a standard",
    ),
    "remat": (lambda: FUSED["lstm"](remat=True), {}, "remat"),
}


@pytest.mark.parametrize("case", sorted(NOT_FUSED))
def test_not_fused_says_why(torch_engine, case):
    build, flags, words = NOT_FUSED[case]
    model = build()
    e = model.explain("torch", **flags)
    assert e.path.startswith("generic loop") and words in e.why, str(e)
    assert "passes" in str(e) and e.ops_per_step > 0
    if flags:  # the plain call of the same model is fused; 'require' fails at the call that is not
        assert model.explain("torch").path.startswith("fused")
        layer = model.lower("torch", fast_path="require")
        with pytest.raises(RshopNotImplementedError, match="fast_path='require'"):
            layer.explain(**flags)
    else:  # 'require' fails when lowering
        with pytest.raises(RshopNotImplementedError, match="fast_path='require'"):
            model.lower("torch", fast_path="require")


def test_require_fails_at_lowering(torch_engine):
    with pytest.raises(RshopNotImplementedError, match="not a standard LSTM"):
        _peephole().lower("torch", fast_path="require")


def test_fast_path_off(torch_engine):
    e = FUSED["lstm"]().explain("torch", fast_path=False)
    assert e.path.startswith("generic loop") and "fast_path=False" in e.why


@pytest.mark.parametrize("bad", ["yes", 1.5, None])
def test_fast_path_value_checked(engine, bad):
    with pytest.raises(RshopConfigError, match="fast_path"):
        FUSED["lstm"]().lower(engine, fast_path=bad)


def test_no_fused_kernels_elsewhere(engine):
    model = FUSED["lstm"]()
    if engine == "torch":
        pytest.skip("torch has fused kernels (the tests above)")
    assert f"the {engine} engine has no fused" in model.explain(engine).why
    with pytest.raises(RshopNotImplementedError, match="fast_path='require'"):
        model.lower(engine, fast_path="require")
