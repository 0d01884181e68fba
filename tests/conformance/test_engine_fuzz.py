"""Differential fuzzing: random well-typed step graphs on every engine against the numpy float64 reference.

``rshop_backends.fuzzing`` draws models (ops of the closed set on the step's input, one to three states,
constants, readout) with random loop options and checks outputs, final states and gradients. The budget
is seeded (the same models every run) and per engine: jax and tensorflow compile each model, so they run
fewer; ``RSHOP_FUZZ_EXAMPLES`` sets one count for all (``nox -s fuzz_engines`` runs 2000) and
``RSHOP_FUZZ_SEED`` another fixed draw. The shrunk counterexamples of past findings run always
(``fuzz_regressions.py``).
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import given, seed, settings

from rshop_backends import fuzzing
from rshop_core.ops import op_names

from . import tolerances
from .fuzz_regressions import REGRESSIONS

# models per engine session in CI (about a minute each on a 2-core machine)
BUDGET = {"numpy": 200, "torch": 200, "jax": 30, "tensorflow": 50}


def budget(engine: str) -> int:
    value = os.environ.get("RSHOP_FUZZ_EXAMPLES")
    return int(value) if value else BUDGET.get(engine, 200)


def test_tolerances_are_the_conformance_table():
    assert fuzzing.FORWARD_ATOL == tolerances.FORWARD_ATOL
    assert fuzzing.GRAD_RTOL == tolerances.GRAD_RTOL
    assert fuzzing.FD_EPS == tolerances.FD_EPS


def test_engine_agrees_on_generated_models(engine):
    n = budget(engine)
    counts = fuzzing.fuzz_engine(engine, max_examples=n, seed=int(os.environ.get("RSHOP_FUZZ_SEED", "0")))
    assert counts["models"] == n


@pytest.mark.parametrize("name", sorted(REGRESSIONS))
def test_fuzz_regression(engine, name):
    _, recipe = REGRESSIONS[name]
    fuzzing.check_case(recipe, engine)


def test_generated_models_cover_the_op_set():
    """What the strategy draws in 300 recipes (no engine runs): every op of the closed set but the
    ones a random graph cannot hold (``custom`` needs a registered op)."""
    drawn: list = []

    @seed(0)
    @settings(max_examples=300, database=None, deadline=None)
    @given(fuzzing.recipes())
    def collect(recipe):
        drawn.append(recipe)

    collect()
    assert set(op_names()) - fuzzing.op_coverage(drawn) == {"custom"}
    options = [r["options"] for r in drawn]
    for key in ("go_backwards", "return_sequences", "return_states", "stateful", "decode", "zero_output_for_mask"):
        assert any(o.get(key) for o in options), key
    assert {r["masking"] for r in drawn} == {None, "mask", "lengths"}
    assert {len(r["states"]) for r in drawn} == {1, 2, 3}
    assert any(r["constants"] for r in drawn) and any(r["readout"] for r in drawn)
    assert any(r["given_states"] for r in drawn)


def test_a_disagreement_is_reported_with_its_recipe(monkeypatch):
    """The checker can fail: numpy in float32 against its float64 run, with no tolerance at all."""
    _, recipe = REGRESSIONS["hoist_inputs_zero_output_mask"]
    monkeypatch.setitem(fuzzing.FORWARD_ATOL, "float32", 0.0)
    with pytest.raises(
        fuzzing.FuzzMismatch, match=r"(?s)engine 'numpy', result #0: max abs error .*'steps': \[\['negative'"
    ):
        fuzzing.check_case(recipe, "numpy")


def test_a_wrong_gradient_is_reported(trainable_engine, monkeypatch):
    """A gradient off by a factor is caught: the engine's harness is wrapped to scale one parameter's."""
    _, recipe = REGRESSIONS["selu_of_a_zero_bias_state"]
    harness = fuzzing._harness
    real = harness(trainable_engine)

    class Scaled:
        def __getattr__(self, name):
            return getattr(real, name)

        def loss_grads(self, *args, **kwargs):
            grads = real.loss_grads(*args, **kwargs)
            return {**grads, "out/kernel": np.asarray(grads["out/kernel"]) * 1.01}

    monkeypatch.setattr(fuzzing, "_harness", lambda e: Scaled() if e == trainable_engine else harness(e))
    with pytest.raises(fuzzing.FuzzMismatch, match=r"d loss / d out/kernel along a random direction"):
        fuzzing.check_case(recipe, trainable_engine)
