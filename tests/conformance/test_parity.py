"""Engines compared pairwise on the same weights and inputs: outputs and gradients.

Runs when at least two engines are selected (the nox ``parity`` session installs all).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from .cases import CASES
from .conftest import as_tuple, assert_close, harness, run
from .tolerances import FORWARD_ATOL, GRAD_RTOL


def pytest_generate_tests(metafunc):
    if "pair" in metafunc.fixturenames:
        engines = metafunc.config.rshop_engines
        pairs = list(itertools.combinations(engines, 2))
        grad_pairs = [p for p in pairs if "numpy" not in p]
        want = grad_pairs if "grads" in metafunc.function.__name__ else pairs
        if not want:
            want = [
                pytest.param(
                    None,
                    marks=pytest.mark.skip(
                        reason=f"pairwise parity needs two engines (gradients: two trainable ones), selected {engines}"
                    ),
                )
            ]
        metafunc.parametrize("pair", want, ids=lambda p: "-".join(p) if p else "none")


@pytest.mark.parametrize("case", sorted(CASES))
def test_pairwise_outputs(pair, case):
    a, b = pair
    c = CASES[case]
    model = c.build(return_sequences=True, return_states=True)
    x, consts = c.inputs(batch=4, steps=12, seed=21)
    # each within FORWARD_ATOL of float64, so within twice that of each other
    assert_close(
        run(model, a, x, constants=consts),
        run(model, b, x, constants=consts),
        2 * FORWARD_ATOL["float32"],
        f"{a} vs {b} on {case}",
    )


@pytest.mark.parametrize("case", sorted(CASES))
def test_pairwise_grads(pair, case):
    c = CASES[case]
    model = c.build(return_sequences=True)
    x, consts = c.inputs(batch=3, steps=8, seed=22)
    y = as_tuple(model.lower("numpy", "float64")(x, constants=consts))[0]
    w_out = np.random.default_rng(1).standard_normal(y.shape).astype(np.float32)
    grads = []
    for engine in pair:
        h = harness(engine)
        native_consts = None if consts is None else [h.to_native(a, "float32") for a in consts]
        grads.append(h.loss_grads(model.lower(engine), h.to_native(x, "float32"), w_out, constants=native_consts))
    ga, gb = grads
    assert sorted(ga) == sorted(gb)
    scale = max(1.0, max(float(np.max(np.abs(g))) for g in ga.values()))
    for name in ga:
        err = float(np.max(np.abs(ga[name] - gb[name])))
        assert err <= 2 * GRAD_RTOL["float32"] * scale, f"{pair} d/d {name}: {err:.3g}"
