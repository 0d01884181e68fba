"""The public parity API: ``rshop_backends.parity.compare``, its report, and ``to_native`` / ``to_numpy``.

Every number compare reports is checked against the conformance suite's own helpers (``run``,
``reference``, ``harness(...).loss_grads``, central differences), which compute it independently.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from tests.conformance.cases import CASES
from tests.conformance.conftest import as_tuple, central_differences, harness, reference, run

from rshop_backends import parity, to_native, to_numpy, tolerances
from rshop_backends.arrays import engine_arrays
from rshop_backends.parity import PROJECTION_SEED, compare
from rshop_core.errors import RshopConfigError, RshopDTypeError, RshopEngineError, RshopParityError


@pytest.fixture(scope="module")
def attention():
    """Two outputs, a constant and a returned state: every kind of forward result."""
    c = CASES["attention"]
    model = c.build(return_sequences=True, return_states=True)
    x, consts = c.inputs(batch=2, steps=3, seed=4)
    return model, x, consts


@pytest.fixture(scope="module")
def small():
    """A cell small enough that compare(grads=True) checks every parameter entry."""
    c = CASES["simple_rnn"]
    model = c.build(return_sequences=True)
    x, _ = c.inputs(batch=2, steps=3, seed=5)
    return model, x


def test_compare_forward_numbers_are_the_conformance_helpers(engine, attention):
    model, x, consts = attention
    report = compare(model, x, engines=[engine], constants=consts)
    want = reference(model, x, constants=consts)
    got = run(model, engine, x, constants=consts)
    assert [(r.engine, r.kind, r.name) for r in report.rows] == [
        (engine, "output", "output_0"),
        (engine, "output", "output_1"),
        (engine, "state", "h"),
    ]
    for row, g, w in zip(report.rows, got, want):
        err = float(np.max(np.abs(g.astype(np.float64) - w)))
        scale = float(np.max(np.abs(w)))
        assert row.max_abs == pytest.approx(err, rel=1e-6, abs=1e-15)
        assert row.max_rel == pytest.approx(err / scale, rel=1e-6, abs=1e-15)
        assert row.limit == pytest.approx(tolerances.FORWARD_ATOL["float32"] * max(1.0, scale))
        assert 0 < row.max_abs <= row.limit  # a float32 engine is never bit-exact, and within tolerance here
    assert report.ok
    assert report.engines == (engine,)
    assert report.tolerances["forward_atol"] == tolerances.FORWARD_ATOL["float32"]
    report.assert_close()  # does not raise


def test_compare_float64(engine, small):
    model, x = small
    report = compare(model, x, engines=[engine], dtype="float64")
    assert report.dtype == "float64" and report.ok
    (row,) = report.rows
    want = reference(model, x)[0]
    assert row.limit == pytest.approx(tolerances.FORWARD_ATOL["float64"] * max(1.0, float(np.max(np.abs(want)))))
    assert row.max_abs < 1e-13  # float64 engines agree with the reference to rounding


def test_compare_grads_are_autodiff_against_central_differences(trainable_engine, small):
    model, x = small
    report = compare(model, x, engines=[trainable_engine], grads=True)
    layer64 = model.lower("numpy", "float64")
    y = reference(model, x)[0]
    w = np.random.default_rng(PROJECTION_SEED).standard_normal(y.shape)
    fd = central_differences(layer64.params, lambda: float(np.sum(as_tuple(layer64(x))[0] * w)))
    h = harness(trainable_engine)
    got = h.loss_grads(model.lower(trainable_engine), h.to_native(x, "float32"), w.astype(np.float32))
    grad_rows = {r.name: r for r in report.rows if r.kind == "grad"}
    assert sorted(grad_rows) == sorted(fd) == sorted(model.params)
    assert all(v.size <= parity.FD_ENTRIES for v in fd.values())  # so every entry was checked
    scale = max(1.0, max(float(np.max(np.abs(g))) for g in fd.values()))
    for name, row in grad_rows.items():
        err = float(np.max(np.abs(got[name].astype(np.float64) - fd[name])))
        assert row.max_abs == pytest.approx(err, rel=1e-3, abs=1e-9), name
        assert row.max_rel == pytest.approx(err / float(np.max(np.abs(fd[name]))), rel=1e-3, abs=1e-9), name
        assert row.limit == pytest.approx(tolerances.GRAD_RTOL["float32"] * scale)
        assert row.ok, name
    assert report.ok
    assert "gradients 0.0002 x max(1, max|reference gradient|)" in report.table()


def test_grads_of_an_inference_only_engine_are_a_note(small):
    model, x = small
    report = compare(model, x, engines=["numpy"], grads=True)
    assert [r.kind for r in report.rows] == ["output"]
    assert report.notes == ("numpy: no gradients (an inference-only engine)",)
    assert "note: numpy: no gradients" in report.table()


def test_large_parameters_are_sampled(trainable_engine):
    """Above FD_ENTRIES entries a parameter is checked at a seeded sample of entries: still within tolerance."""
    c = CASES["lstm"]
    model = c.build()
    x, _ = c.inputs(batch=2, steps=3, seed=6)
    assert max(int(np.prod(p.shape)) for p in model.params.values()) > parity.FD_ENTRIES
    report = compare(model, x, engines=[trainable_engine], grads=True)
    assert report.ok, report.table()
    assert sorted(r.name for r in report.rows if r.kind == "grad") == sorted(model.params)


def test_a_stateful_model_is_compared_on_its_first_call(trainable_engine):
    """Every run compare makes (the engine's call, its gradient call, each finite difference) starts from
    the initial states, not from what the previous run carried."""
    c = CASES["simple_rnn"]
    model = c.build(stateful=True, return_sequences=True)
    x, _ = c.inputs(batch=2, steps=3, seed=8)
    report = compare(model, x, engines=[trainable_engine], grads=True)
    assert report.ok, report.table()
    first = reference(model, x)[0]
    assert report.rows[0].max_abs == pytest.approx(
        float(np.max(np.abs(run(model, trainable_engine, x)[0] - first))), rel=1e-6, abs=1e-15
    )
    assert "grad simple_rnn_cell/recurrent_kernel " in report.table()  # long names are not cut


@pytest.fixture
def perturbed(engine, monkeypatch):
    """The engine's results come back 1e-3 too large: a bug compare must see."""
    hooks = engine_arrays(engine)
    plain = hooks.to_numpy
    monkeypatch.setattr(hooks, "to_numpy", lambda a: plain(a) + 1e-3)
    return engine


def test_a_failing_report_raises_with_the_table(perturbed, attention):
    model, x, consts = attention
    report = compare(model, x, engines=[perturbed], constants=consts)
    assert not report.ok
    for row in report.rows:
        assert row.max_abs == pytest.approx(1e-3, rel=0.05)
        assert not row.ok
    with pytest.raises(RshopParityError) as info:
        report.assert_close()
    msg = str(info.value)
    assert msg.startswith("compare('")
    assert "expected every engine within tolerance of the numpy float64 reference, received 3 result(s)" in msg
    assert f"({perturbed} output_0, {perturbed} output_1, {perturbed} state h)" in msg and f"{perturbed} state h" in msg
    assert report.table() in msg
    assert "3 of 3 results exceed their limit" in msg
    assert isinstance(info.value, AssertionError)  # pytest shows it as a failed assertion


def test_a_tolerance_of_zero_fails(monkeypatch, small):
    model, x = small
    monkeypatch.setitem(tolerances.FORWARD_ATOL, "float32", 0.0)
    report = compare(model, x, engines=["numpy"])
    assert not report.ok and report.rows[0].limit == 0.0
    assert "NO" in report.table()


def test_to_dict_is_json(monkeypatch, small):
    model, x = small
    hooks = engine_arrays("numpy")
    monkeypatch.setattr(hooks, "to_numpy", lambda a: np.asarray(a)[:, :1])  # a wrong shape
    d = json.loads(json.dumps(compare(model, x, engines=["numpy"]).to_dict(), allow_nan=False))
    assert d["ok"] is False and d["dtype"] == "float32" and d["engines"] == ["numpy"]
    (row,) = d["rows"]
    assert row["max_abs"] == "inf" and row["ok"] is False
    assert row["detail"] == "shape (2, 1, 6), reference (2, 3, 6)"
    assert d["tolerances"] == {
        "forward_atol": tolerances.FORWARD_ATOL["float32"],
        "grad_rtol": tolerances.GRAD_RTOL["float32"],
        "fd_eps": tolerances.FD_EPS,
    }


def test_compare_argument_errors(small):
    model, x = small
    with pytest.raises(RshopConfigError, match=r"compare\('.*'\) dtype: expected one of \['float32', 'float64'\], "):
        compare(model, x, engines=["numpy"], dtype="float16")
    with pytest.raises(RshopConfigError, match=r"compare engines: expected a list of engine names, received 'numpy'"):
        compare(model, x, engines="numpy")  # type: ignore[arg-type]
    with pytest.raises(RshopConfigError, match=r"engine: expected one of .*, received 'nope'"):
        compare(model, x, engines=["nope"])
    with pytest.raises(RshopConfigError, match=r"inputs: expected numpy arrays, received list\. "):
        compare(model, [[1.0]], engines=["numpy"])  # type: ignore[arg-type]
    with pytest.raises(RshopConfigError, match=r"argument constants: expected numpy arrays, received object\. "):
        compare(model, x, engines=["numpy"], constants=[object()])


def test_to_native_and_to_numpy_round_trip(engine):
    rng = np.random.default_rng(0)
    for a, dtype in [
        (rng.standard_normal((2, 3)), None),  # float64 kept (on jax too)
        (rng.standard_normal((2, 3)), "float32"),
        (rng.integers(0, 5, (2, 3)).astype(np.int32), None),
        (rng.random((2, 3)) < 0.5, "bool"),
    ]:
        native = to_native(a, engine, dtype)
        back = to_numpy(native)
        want = a if dtype is None else a.astype(dtype)
        assert back.dtype == want.dtype and np.array_equal(back, want), (engine, dtype)
    y, s = to_numpy((to_native(np.ones(2), engine), to_native(np.zeros(1), engine, "float32")))
    assert y.tolist() == [1.0, 1.0] and s.dtype == np.float32
    with pytest.raises(RshopDTypeError, match=r"to_native\('.*'\) dtype: expected one of .*, received 'int64'\. "):
        to_native(np.arange(3), engine)
    with pytest.raises(RshopConfigError, match=r"array: expected numbers or booleans, received an array of <U1"):
        to_native(np.array(["a"]), engine, "float32")


def test_to_native_of_a_missing_engine():
    with pytest.raises((RshopConfigError, RshopEngineError), match=r"engine: expected one of .*, received 'nope'"):
        to_native(np.ones(2), "nope")
