"""Outputs and final states of every case on every engine equal the numpy float64 reference."""

from __future__ import annotations

import numpy as np
import pytest

from .cases import CASES
from .runs import assert_close, reference, run
from .tolerances import FORWARD_ATOL, SAME_ENGINE_ATOL

OPTION_SETS = {
    "seq_states": dict(return_sequences=True, return_states=True),
    "last": dict(),
    "backwards_seq": dict(return_sequences=True, return_states=True, go_backwards=True),
    "backwards_last": dict(go_backwards=True),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("options", sorted(OPTION_SETS))
def test_matches_reference(engine: str, case: str, options: str) -> None:
    c = CASES[case]
    model = c.build(**OPTION_SETS[options])
    x, consts = c.inputs()
    want = reference(model, x, constants=consts)
    got = run(model, engine, x, constants=consts)
    assert_close(got, want, FORWARD_ATOL["float32"], f"{engine}/{case}/{options}")


@pytest.mark.parametrize("case", ["lstm", "two_state_custom", "attention"])
def test_given_initial_state(engine: str, case: str) -> None:
    c = CASES[case]
    model = c.build(return_sequences=True, return_states=True)
    x, consts = c.inputs(batch=2, steps=4, seed=1)
    rng = np.random.default_rng(2)
    init = [rng.standard_normal((2,) + s.shape) for s in model.state_specs]
    want = reference(model, x, initial_state=init, constants=consts)
    got = run(model, engine, x, initial_state=init, constants=consts)
    assert_close(got, want, FORWARD_ATOL["float32"], f"{engine}/{case}/initial_state")


@pytest.mark.parametrize("unroll", [True, 3])
@pytest.mark.parametrize("case", ["lstm", "two_state_custom", "attention"])
def test_unroll_equals_loop(engine: str, case: str, unroll: bool | int) -> None:
    c = CASES[case]
    x, consts = c.inputs(steps=7, seed=3)  # 7 is not a multiple of 3: the remainder path runs
    plain = run(c.build(return_sequences=True, return_states=True), engine, x, constants=consts)
    unrolled = run(c.build(return_sequences=True, return_states=True, unroll=unroll), engine, x, constants=consts)
    assert_close(unrolled, plain, SAME_ENGINE_ATOL["float32"], f"{engine}/{case}/unroll={unroll}")
    assert_close(
        unrolled,
        reference(c.build(return_sequences=True, return_states=True), x, constants=consts),
        FORWARD_ATOL["float32"],
        f"{engine}/{case}/unroll={unroll} vs reference",
    )


@pytest.mark.parametrize("batch,steps", [(1, 1), (1, 6), (4, 1)])
def test_edge_sizes(engine: str, batch: int, steps: int) -> None:
    c = CASES["lstm"]
    model = c.build(return_sequences=True, return_states=True)
    x, _ = c.inputs(batch=batch, steps=steps, seed=4)
    assert_close(run(model, engine, x), reference(model, x), FORWARD_ATOL["float32"], f"{engine} B={batch} T={steps}")


def test_one_layer_two_lengths(engine: str) -> None:
    """A lowered object is not tied to the T (nor the batch) of its first call."""
    c = CASES["attention"]
    model = c.build(return_sequences=True, return_states=True)
    layer = model.lower(engine)
    for batch, steps in [(2, 3), (3, 9), (2, 3)]:
        x, consts = c.inputs(batch=batch, steps=steps, seed=steps)
        got = run(model, engine, x, constants=consts, layer=layer)
        assert got[0].shape == (batch, steps, 8)
        assert_close(got, reference(model, x, constants=consts), FORWARD_ATOL["float32"], f"{engine} T={steps}")


def test_go_backwards_reverses(engine: str) -> None:
    """go_backwards on x equals forward on x reversed along time (outputs in processing order)."""
    c = CASES["gru"]
    x, _ = c.inputs(steps=6, seed=8)
    back = run(c.build(return_sequences=True, go_backwards=True), engine, x)
    fwd = run(c.build(return_sequences=True), engine, np.ascontiguousarray(x[:, ::-1]))
    assert_close(back, fwd, SAME_ENGINE_ATOL["float32"], f"{engine} go_backwards")


def test_float64_lowering(engine: str) -> None:
    """Engines that compute in float64 agree with the reference to float64 precision."""
    from .runs import harness

    c = CASES["two_state_custom"]
    model = c.build(return_sequences=True, return_states=True)
    x, _ = c.inputs(seed=9)
    with harness(engine).float64_scope():
        got = run(model, engine, x, dtype="float64")
    assert got[0].dtype == np.float64
    assert_close(got, reference(model, x), FORWARD_ATOL["float64"], f"{engine} float64")
