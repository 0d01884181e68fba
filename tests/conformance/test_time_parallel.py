"""time_parallel on every engine: the associative scan and parallel Newton give the sequential
loop's outputs, final states and gradients, with every loop option, and refuse what they cannot do.

References: the numpy float64 sequential loop (``time_parallel=False``) for values, float64 central
differences of it for gradients.
"""

from __future__ import annotations

import functools
import importlib

import numpy as np
import pytest

import rshop_backends.parallel
from rshop_core import Bidirectional, Input, RecurrentModel, RshopConfigError, RshopParallelWarning, load
from rshop_core import functional as F
from rshop_core import initializers as I
from rshop_core.cells import Cell, LSTMCell, MinLSTMCell, RGLRUCell
from rshop_core.layers import Dense

from .conftest import as_tuple, assert_close, central_differences, harness, native, reference, run
from .tolerances import FORWARD_ATOL, GRAD_RTOL

B, T = 3, 11
LENGTHS = np.array([11, 6, 1], dtype=np.int32)
RNG = np.random.default_rng(7)


def _x(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def gated_linear(**opts):
    """minGRU-like: h_t = (1 - z) h + z g with z, g from x alone (affine, diagonal)."""
    x, h = Input((3,), name="x"), Input((4,), name="h")
    z = F.sigmoid(Dense(4, name="z")(x))
    h_new = (1.0 - z) * h + z * Dense(4, name="g")(x)
    return RecurrentModel(input=x, initial_states=[h], output=F.tanh(h_new), final_states=[h_new], seed=61, **opts)


def coupled(**opts):
    """Two states coupled elementwise (affine, Jacobian block(2)), of different shapes' flat order."""
    x, h, c = Input((3,), name="x"), Input((4,), name="h"), Input((4,), name="c")
    f = F.sigmoid(Dense(4, name="f")(x))
    c_new = f * c + (1.0 - f) * 0.5 * h + Dense(4, name="g")(x)
    h_new = 0.3 * c + 0.6 * h
    y = Dense(2, name="out")(F.concat([h_new, c_new]))
    return RecurrentModel(input=x, initial_states=[h, c], output=y, final_states=[h_new, c_new], seed=62, **opts)


def dense_linear(**opts):
    """A linear RNN with a dense recurrent matrix and a readout (affine, dense: one group of N)."""
    x, h, y_tm1 = Input((3,), name="x"), Input((3,), name="h"), Input((2,), name="y_tm1")
    h_new = Dense(3, name="w")(x) + Dense(3, use_bias=False, kernel_initializer=I.Orthogonal(0.5), name="u")(h)
    h_new = h_new + Dense(3, use_bias=False, name="r")(y_tm1)
    y = Dense(2, name="out")(h_new) * 0.5
    return RecurrentModel(
        input=x, initial_states=[h], output=y, final_states=[h_new], readout_input=y_tm1, seed=63, **opts
    )


def levels(**opts):
    """Two levels: m (2, 2) follows x alone, h reads m (a multi-dimensional upstream state)."""
    x, h, m = Input((3,), name="x"), Input((4,), name="h"), Input((2, 2), name="m")
    m_new = 0.9 * m + F.reshape(Dense(4, name="w")(x), [2, 2])
    h_new = F.sigmoid(Dense(4, name="g")(x)) * h + F.reshape(m, [4])
    y = F.tanh(h_new) + F.reshape(m_new, [4])
    return RecurrentModel(input=x, initial_states=[h, m], output=y, final_states=[h_new, m_new], seed=66, **opts)


class _IndCell(Cell):
    """IndRNN-like: h_t = tanh(x W + u * h) (nonlinear, Jacobian diagonal: Newton)."""

    state_names = ("h",)

    def state_shapes(self):
        return [(self.units,)]

    def step(self, x, states):
        (h,) = states
        w = self.add_weight("kernel", (x.shape[-1], self.units), "glorot_uniform")
        u = self.add_weight("recurrent_gain", (self.units,), I.RandomUniform(-0.9, 0.9))
        h_new = F.tanh(F.matmul(x, w) + u * h)
        return h_new, [h_new]


def indrnn(**opts):
    return _IndCell(4, input_dim=3, name="ind").get_layer(seed=64, **opts)


def decode_linear(**opts):
    """decode: one x seen at every step; affine in h."""
    x, h = Input((3,), name="x"), Input((4,), name="h")
    h_new = 0.8 * h + Dense(4, name="w")(x)
    opts.setdefault("output_length", 9)
    return RecurrentModel(input=x, initial_states=[h], output=h_new, final_states=[h_new], decode=True, seed=65, **opts)


MODELS = {
    "gated_linear": gated_linear,
    "coupled": coupled,
    "dense_linear": dense_linear,
    "levels": levels,
    "indrnn": indrnn,
}
MODE = {"gated_linear": "scan", "coupled": "scan", "dense_linear": "scan", "levels": "scan", "indrnn": "newton"}

# name: (loop options, call keywords)
VARIANTS = {
    "last": ({}, {}),
    "sequences_backwards": ({"return_sequences": True, "go_backwards": True}, {}),
    "lengths_states": ({"return_sequences": True, "return_states": True}, {"sequence_lengths": LENGTHS}),
    "mask_zero_output": ({"return_sequences": True, "zero_output_for_mask": True}, {"mask": _x(B, T) > -0.3}),
    "initial_state_backwards": ({"go_backwards": True, "return_states": True}, {"initial_state": "given"}),
}


def _call(name, call):
    call = dict(call)
    if call.get("initial_state") == "given":
        model = MODELS[name]()
        call["initial_state"] = [_x(B, *s.shape, seed=3 + i) for i, s in enumerate(model.state_specs)]
    return call


def _check(name, variant, engine, dtype, atol):
    opts, call = VARIANTS[variant]
    call = _call(name, call)
    x = _x(B, T, 3)
    init = call.pop("initial_state", None)
    want = reference(MODELS[name](time_parallel=False, **opts), x, init, **call)
    model = MODELS[name](time_parallel=MODE[name], **opts)
    got = run(model, engine, x, dtype, init, **call)
    assert_close(got, want, atol, f"{engine}/{name}/{variant}/{dtype}")


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("name", sorted(MODELS))
def test_parallel_matches_sequential_float64(engine, name, variant):
    with harness(engine).float64_scope():
        _check(name, variant, engine, "float64", 1e-10)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_parallel_matches_sequential_float32(engine, name):
    _check(name, "lengths_states", engine, "float32", FORWARD_ATOL["float32"])


def test_decode_scans(engine):
    x = _x(B, 3)
    want = reference(decode_linear(time_parallel=False, return_sequences=True), x)
    with harness(engine).float64_scope():
        got = run(decode_linear(time_parallel="scan", return_sequences=True), engine, x, "float64")
    assert_close(got, want, 1e-10, f"{engine}/decode")


def test_learned_state_and_bidirectional(engine):
    def build(tp):
        fwd = gated_linear(
            time_parallel=tp, return_sequences=True, state_initializer=I.Learned("glorot_uniform"), name="fwd"
        )
        return Bidirectional(fwd, merge_mode="concat")

    x = _x(B, T, 3)
    with harness(engine).float64_scope():
        got = run(build("scan"), engine, x, "float64", sequence_lengths=LENGTHS)
    assert_close(got, reference(build(False), x, sequence_lengths=LENGTHS), 1e-10, f"{engine}/bidirectional")


def test_stateful_carries_parallel_final_states(engine):
    def build(tp):
        return gated_linear(time_parallel=tp, stateful=True, batch_size=B, return_sequences=True)

    h = harness(engine)
    seq, par = build(False).lower("numpy", "float64"), build("scan").lower(engine)
    for i in range(2):
        x = _x(B, T, 3, seed=10 + i)
        want = seq(x)
        got = h.to_numpy(par(native(h, x, "float32")))
        assert_close((got,), (want,), FORWARD_ATOL["float32"], f"{engine}/stateful call {i}")


def test_save_load_keeps_the_option(tmp_path):
    path = tmp_path / "m.rshop"
    indrnn(time_parallel="newton", newton_tol=1e-6, newton_max_iter=7).save(path)
    back = load(path)
    assert (back.options.time_parallel, back.options.newton_tol, back.options.newton_max_iter) == ("newton", 1e-6, 7)
    gated_linear().save(tmp_path / "d.rshop")
    assert '"time_parallel"' not in (tmp_path / "d.rshop").read_bytes().decode("latin-1")  # defaults stay out
    assert load(tmp_path / "d.rshop").options.time_parallel == "auto"


# -- gradients ------------------------------------------------------------------------------
GRAD_CASES = {  # the block form's gradient: coupled (dense_linear runs the same block code, with k = N)
    "gated_linear": ({"return_sequences": True}, {"sequence_lengths": LENGTHS}),
    "coupled": ({"go_backwards": True}, {}),
    "indrnn": ({"return_sequences": True}, {"sequence_lengths": LENGTHS}),
}


def _w_out(name):
    opts, call = GRAD_CASES[name]
    y = as_tuple(MODELS[name](time_parallel=False, **opts).lower("numpy", "float64")(_x(B, T, 3), **call))[0]
    return np.random.default_rng(5).standard_normal(y.shape)


@functools.cache
def _fd(name):
    opts, call = GRAD_CASES[name]
    layer = MODELS[name](time_parallel=False, **opts).lower("numpy", "float64")
    w, x = _w_out(name), _x(B, T, 3)
    return central_differences(layer.params, lambda: float(np.sum(as_tuple(layer(x, **call))[0] * w)))


def _grads(engine, name, tp):
    opts, call = GRAD_CASES[name]
    h = harness(engine)
    layer = MODELS[name](time_parallel=tp, **opts).lower(engine)
    kwargs = {k: native(h, v, "float32") for k, v in call.items()}
    return h.loss_grads(layer, native(h, _x(B, T, 3), "float32"), _w_out(name).astype(np.float32), **kwargs)


@pytest.mark.parametrize("name", sorted(GRAD_CASES))
def test_gradients_match_finite_differences(trainable_engine, name):
    got = _grads(trainable_engine, name, MODE[name])
    want = _fd(name)
    scale = max(1.0, max(float(np.max(np.abs(g))) for g in want.values()))
    assert sorted(got) == sorted(want)
    for k in want:
        err = float(np.max(np.abs(got[k].astype(np.float64) - want[k])))
        assert err <= GRAD_RTOL["float32"] * scale, f"{trainable_engine}/{name}/{k}: {err:.3g} vs finite differences"


# -- the built-in cells of the family (MinGRU and IndRNN are also conformance cases in cases.py) -------
CELLS = {
    "min_lstm": lambda **o: MinLSTMCell(4, input_dim=3, bias_initializer=I.RandomNormal(0, 0.5)).get_layer(
        seed=67, **o
    ),
    "rglru": lambda **o: RGLRUCell(4, input_dim=3, bias_initializer=I.RandomNormal(0, 0.5)).get_layer(seed=68, **o),
}


@pytest.mark.parametrize("tp", [False, "scan"], ids=["sequential", "scan"])
@pytest.mark.parametrize("name", sorted(CELLS))
def test_cells_match_the_reference(engine, name, tp):
    x = _x(B, T, 3)
    want = reference(CELLS[name](time_parallel=False, return_sequences=True), x, sequence_lengths=LENGTHS)
    got = run(CELLS[name](time_parallel=tp, return_sequences=True), engine, x, sequence_lengths=LENGTHS)
    assert_close(got, want, FORWARD_ATOL["float32"], f"{engine}/{name}/{tp}")


@functools.cache
def _cell_fd(name):
    layer = CELLS[name](time_parallel=False, return_sequences=True).lower("numpy", "float64")
    x, w = _x(B, T, 3), np.random.default_rng(6).standard_normal((B, T, 4))
    return central_differences(layer.params, lambda: float(np.sum(layer(x) * w)))


@pytest.mark.parametrize("name", sorted(CELLS))
def test_cells_scan_gradients_match_finite_differences(trainable_engine, name):
    h = harness(trainable_engine)
    layer = CELLS[name](time_parallel="scan", return_sequences=True).lower(trainable_engine)
    w = np.random.default_rng(6).standard_normal((B, T, 4)).astype(np.float32)
    got = h.loss_grads(layer, native(h, _x(B, T, 3), "float32"), w)
    want = _cell_fd(name)
    scale = max(1.0, max(float(np.max(np.abs(g))) for g in want.values()))
    for k in want:
        err = float(np.max(np.abs(got[k].astype(np.float64) - want[k])))
        assert err <= GRAD_RTOL["float32"] * scale, f"{trainable_engine}/{name}/{k}: {err:.3g}"


# -- Newton's fallback, refusals, explain -----------------------------------------------------
def test_newton_that_does_not_converge_falls_back_and_warns(engine):
    x = _x(B, T, 3)
    want = reference(indrnn(time_parallel=False, return_sequences=True), x)
    model = indrnn(time_parallel="newton", newton_max_iter=1, newton_tol=1e-9, return_sequences=True)
    layer = model.lower(engine, "float32")
    with pytest.warns(RshopParallelWarning, match=r"did not converge .* after 1 iterations; the sequential loop ran"):
        got = run(model, engine, x, layer=layer)
    assert_close(got, want, FORWARD_ATOL["float32"], f"{engine}/fallback")
    assert layer.newton_report["converged"] is False and layer.newton_report["iterations"] == 1


def _stops_at_once(change, before, tol):
    return change < -1.0  # an engine False: as if every next step were expected to settle it


def _eager_only(engine):
    if not importlib.import_module(f"rshop_backends.{engine}.parallel").EAGER:
        pytest.skip(f"{engine} runs Newton compiled: its loop checks every change itself (no early stop)")


def test_newton_iterates_on_when_its_last_step_moves_the_states_too_far(engine, monkeypatch):
    # The loop stops after its first step; the last, differentiable step then moves the states by far
    # more than the tolerance, so the iterations go on from it and a last step is taken again.
    _eager_only(engine)
    monkeypatch.setattr(rshop_backends.parallel, "newton_goes_on", _stops_at_once)
    x = _x(B, T, 3)
    want = reference(indrnn(time_parallel=False, return_sequences=True), x)
    model = indrnn(time_parallel="newton", return_sequences=True)
    layer = model.lower(engine, "float32")
    got = run(model, engine, x, layer=layer)
    assert_close(got, want, FORWARD_ATOL["float32"], f"{engine}/iterated on")
    report = layer.newton_report
    assert report["converged"] is True and report["iterations"] >= 4, report


def test_newton_gradients_after_iterating_on(trainable_engine, monkeypatch):
    _eager_only(trainable_engine)
    monkeypatch.setattr(rshop_backends.parallel, "newton_goes_on", _stops_at_once)
    got, want = _grads(trainable_engine, "indrnn", "newton"), _fd("indrnn")
    scale = max(1.0, max(float(np.max(np.abs(g))) for g in want.values()))
    for k in want:
        err = float(np.max(np.abs(got[k].astype(np.float64) - want[k])))
        assert err <= GRAD_RTOL["float32"] * scale, f"{trainable_engine}/{k}: {err:.3g} vs finite differences"


def test_newton_reports_its_iterations(engine):
    layer = indrnn(time_parallel="newton").lower(engine)
    run(indrnn(), engine, _x(B, T, 3), layer=layer)
    report = layer.newton_report
    assert report["converged"] is True and 1 <= report["iterations"] <= 10, report


def test_scan_on_a_nonlinear_step_names_the_node(engine):
    said = r"time_parallel='scan'\): expected a step whose new states are affine"
    with pytest.raises(RshopConfigError, match=said) as e:
        indrnn(time_parallel="scan").lower(engine)
    assert "node %" in str(e.value) and "(tanh) makes state 'h' non-affine; Jacobian diagonal" in str(e.value)
    assert "Use time_parallel='newton' (its Jacobian is diagonal) or False." in str(e.value)


def test_newton_on_a_dense_jacobian_is_refused(engine):
    with pytest.raises(RshopConfigError, match=r"expected a step whose Jacobian over its states is diagonal"):
        LSTMCell(3, input_dim=2).get_layer(time_parallel="newton").lower(engine)


@pytest.mark.parametrize(
    "bad, said",
    [
        ({"time_parallel": True}, "option time_parallel: expected False, 'auto', 'scan' or 'newton', received True."),
        ({"time_parallel": "fast"}, "received 'fast'"),
        ({"newton_tol": 0.0}, "option newton_tol: expected None or a number in (0, 1), received 0.0."),
        ({"newton_max_iter": 0}, "option newton_max_iter: expected an int >= 1, received 0."),
    ],
)
def test_bad_options_refused(bad, said):
    with pytest.raises(RshopConfigError) as e:
        gated_linear(**bad)
    assert said in str(e.value)


def test_explain_says_which_loop_and_why():
    lines = {
        name: str(MODELS[name](time_parallel=mode).lower("numpy").explain())
        for name, mode in (("gated_linear", "scan"), ("coupled", "scan"), ("indrnn", "newton"))
    }
    assert "over time: associative scan: state 'h' is affine in the states, Jacobian diagonal" in lines["gated_linear"]
    assert "Jacobian block(2)" in lines["coupled"]
    assert "over time: parallel Newton" in lines["indrnn"] and "non-affine; Jacobian diagonal" in lines["indrnn"]
    auto = str(indrnn().lower("numpy").explain())
    assert "over time: sequential: node %" in auto and "time_parallel='newton' possible: Jacobian diagonal" in auto
    masked = str(gated_linear(time_parallel="scan").lower("numpy").explain(masked=True))
    assert "associative scan in 2 levels" in masked
    assert "associative scan in 2 levels: state 'm' is affine" in str(
        levels(time_parallel="scan").lower("numpy").explain()
    )
