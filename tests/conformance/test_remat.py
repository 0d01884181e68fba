"""remat (gradient checkpointing) on every engine: the same outputs, final states and gradients
as without it, on the option's edge cases (a segment of one step, a remainder, k >= T)."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from rshop_core import RecurrentSequential, serialization
from rshop_core.cells import GRUCell, LSTMCell
from rshop_core.errors import RshopConfigError

from .cases import attention_model, two_state_model
from .composition_cases import decode_model
from .conftest import as_tuple, assert_close, central_differences, harness, native, reference, run
from .tolerances import FORWARD_ATOL, GRAD_RTOL, SAME_ENGINE_ATOL

B, T = 3, 7
# True: ceil(sqrt(7)) = 3 steps a segment; 1: a checkpoint per step; 3: 3 + 3 + a remainder of 1;
# 7: one segment; 10: k > T.
REMATS = [True, 1, 3, 7, 10]
LENGTHS = np.array([7, 4, 1], dtype=np.int32)


def lstm(**opts):
    return LSTMCell(5, input_dim=4).get_layer(seed=51, **opts)


def gru(**opts):
    return GRUCell(5, input_dim=4).get_layer(seed=52, **opts)


def stack(**opts):
    seq = RecurrentSequential(seed=53, **opts)
    seq.add(LSTMCell(5, input_dim=4, name="lower"))
    seq.add(GRUCell(4, name="upper"))
    return seq


def _x(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


# name: (builder, loop options, x, call keywords, constants)
SETUPS = {
    "lstm_sequences": (lstm, {"return_sequences": True}, _x(B, T, 4), {}, None),
    "lstm_last": (lstm, {}, _x(B, T, 4), {}, None),
    "lstm_backwards": (lstm, {"go_backwards": True, "return_sequences": True}, _x(B, T, 4), {}, None),
    "lstm_unroll": (lstm, {"unroll": 2, "return_sequences": True}, _x(B, T, 4), {}, None),
    "custom_last_backwards": (two_state_model, {"go_backwards": True}, _x(B, T, 4), {}, None),
    "custom_sequences": (two_state_model, {"return_sequences": True}, _x(B, T, 4), {}, None),
    "attention_constants": (attention_model, {"return_sequences": True}, _x(B, T, 4), {}, [_x(B, 7, 8, seed=1)]),
    "lengths": (gru, {"return_sequences": True}, _x(B, T, 4), {"sequence_lengths": LENGTHS}, None),
    "lengths_backwards_last": (gru, {"go_backwards": True}, _x(B, T, 4), {"sequence_lengths": LENGTHS}, None),
    "decode": (decode_model, {"output_length": T, "return_sequences": True}, _x(B, 5), {}, None),
    "stack": (stack, {"return_sequences": True}, _x(B, T, 4), {}, None),
}


def build(setup, remat, **extra):
    builder, opts, _, _, _ = SETUPS[setup]
    return builder(**{**opts, **extra, "remat": remat})


@pytest.mark.parametrize("remat", REMATS, ids=lambda r: f"remat={r}")
@pytest.mark.parametrize("setup", sorted(SETUPS))
def test_outputs_and_states_match_reference(engine, setup, remat):
    _, _, x, call, consts = SETUPS[setup]
    want = reference(build(setup, False, return_states=True), x, constants=consts, **call)
    model = build(setup, remat, return_states=True)
    assert model.options.remat == remat
    got = run(model, engine, x, constants=consts, **call)
    assert_close(got, want, FORWARD_ATOL["float32"], f"{engine}/{setup}/remat={remat}")


@pytest.mark.parametrize("remat", [True, 3], ids=lambda r: f"remat={r}")
def test_new_lengths_on_one_layer(engine, remat):
    """One layer called at several T (tensorflow then traces with T unknown: k computed in the graph)."""
    model = lstm(return_sequences=True, return_states=True, remat=remat)
    layer = model.lower(engine)
    for steps in (7, 5, 12, 1):
        x = _x(B, steps, 4, seed=steps)
        want = reference(lstm(return_sequences=True, return_states=True), x)
        assert_close(run(model, engine, x, layer=layer), want, FORWARD_ATOL["float32"], f"{engine}/T={steps}")


def _weights_out(setup):
    _, _, x, call, consts = SETUPS[setup]
    y = as_tuple(build(setup, False).lower("numpy", "float64")(x, constants=consts, **call))[0]
    return np.random.default_rng(9).standard_normal(y.shape)


@functools.cache
def _finite_differences(setup):
    _, _, x, call, consts = SETUPS[setup]
    layer = build(setup, False).lower("numpy", "float64")
    w_out = _weights_out(setup)
    return central_differences(
        layer.params, lambda: float(np.sum(as_tuple(layer(x, constants=consts, **call))[0] * w_out))
    )


def _engine_grads(engine, model, setup):
    _, _, x, call, consts = SETUPS[setup]
    h = harness(engine)
    layer = model.lower(engine)
    kwargs = {k: native(h, v, "float32") if isinstance(v, np.ndarray) else v for k, v in call.items()}
    consts = None if consts is None else [native(h, c, "float32") for c in consts]
    return h.loss_grads(
        layer, native(h, x, "float32"), _weights_out(setup).astype(np.float32), constants=consts, **kwargs
    )


@functools.cache
def _plain_grads(engine, setup):
    """The engine's gradients without remat: one compile per setup, shared by every remat value."""
    return _engine_grads(engine, build(setup, False), setup)


GRAD_SETUPS = [
    "lstm_sequences",
    "lstm_last",
    "lstm_backwards",
    "custom_last_backwards",
    "attention_constants",
    "lengths",
    "lengths_backwards_last",
    "decode",
    "stack",
]


# remat=3 is the segment remat=True takes at T=7 (the forward test above runs both); 1: a checkpoint per
# step; 10: one segment longer than the sequence.
@pytest.mark.parametrize("remat", [True, 1, 10], ids=lambda r: f"remat={r}")
@pytest.mark.parametrize("setup", GRAD_SETUPS)
def test_gradients_equal_plain_loop_and_finite_differences(trainable_engine, setup, remat):
    plain = _plain_grads(trainable_engine, setup)
    got = _engine_grads(trainable_engine, build(setup, remat), setup)
    want = _finite_differences(setup)
    assert sorted(got) == sorted(want) == sorted(plain)
    scale = max(1.0, max(float(np.max(np.abs(g))) for g in want.values()))
    assert any(np.any(g != 0) for g in got.values()), "no gradient reached any parameter"
    for name in want:
        same = float(np.max(np.abs(got[name].astype(np.float64) - plain[name])))
        assert same <= 5 * SAME_ENGINE_ATOL["float32"] * scale, (
            f"{trainable_engine}/{setup}/remat={remat}: d/d {name} differs from the plain loop's by {same:.3g}"
        )
        err = float(np.max(np.abs(got[name].astype(np.float64) - want[name])))
        assert err <= GRAD_RTOL["float32"] * scale, (
            f"{trainable_engine}/{setup}/remat={remat}: d/d {name} off finite differences by {err:.3g}"
        )


@pytest.mark.parametrize("bad", [0, -2, 2.5, "yes", None, [3]])
def test_invalid_remat_is_refused(bad):
    with pytest.raises(RshopConfigError, match=r"option remat: expected True, False or an int >= 1.*received"):
        lstm(remat=bad)


def test_segment_lengths():
    from rshop_core import LoopOptions

    assert LoopOptions().remat_segment(100) is None
    assert [LoopOptions(remat=True).remat_segment(t) for t in (1, 2, 4, 7, 9, 10, 10_000, 10_001)] == [
        1,
        2,
        2,
        3,
        3,
        4,
        100,
        101,
    ]
    assert LoopOptions(remat=5).remat_segment(3) == 5


def test_remat_passes_through_clone_and_files():
    model = lstm(return_sequences=True, remat=4)
    assert model.clone("copy").options.remat == 4
    assert model.clone("copy", remat=True).options.remat is True
    assert serialization.loads(serialization.dumps(model)).options.remat == 4
    assert serialization.loads(serialization.dumps(lstm(remat=True))).options.remat is True
    # Off, the option is not written: the file is what a reader from before remat accepts, and
    # such files (no "remat" key) load with remat off.
    doc = serialization.to_document(lstm())
    assert "remat" not in doc["model"]["options"]
    assert serialization.from_document(doc).options.remat is False
