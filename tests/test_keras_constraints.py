"""Weight constraints in Keras' ``Model.fit`` (rshop_backends.keras.RecurrentLayer) on every installed Keras backend.

Keras fixes its backend at import, so tests/keras_constraints_report.py runs once per backend in its own process
(``KERAS_BACKEND`` set) and reports JSON that the tests below assert on.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("keras")

SCRIPT = Path(__file__).with_name("keras_constraints_report.py")


@pytest.fixture(scope="module", params=("jax", "torch", "tensorflow"))
def report(request, tmp_path_factory):
    backend = request.param
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"Keras backend {backend!r} needs {backend}, not installed in this session")
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run(
        [sys.executable, str(SCRIPT)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        cwd=str(tmp_path_factory.mktemp(f"keras_constraints_{backend}")),
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("REPORT ")]
    assert proc.returncode == 0 and lines, (
        f"KERAS_BACKEND={backend} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    )
    out = json.loads(lines[-1][len("REPORT ") :])
    assert out["backend"] == backend
    return out


def test_the_constraints_bind_before_fit(report):
    b = report["before"]
    assert b["dense_kernel_max_norm"] > 0.3 and b["lstm_kernel_max_norm"] > 0.4
    assert b["lstm_recurrent_min"] < 0 and b["lstm_bias_norm"] > 1.0
    assert max(abs(n - 1.0) for n in b["dense_1_kernel_norms"]) > 0.1


def test_fit_leaves_every_constrained_weight_in_its_set(report):
    a = report["after"]
    assert a["dense_kernel_max_norm"] <= 0.3 + 1e-6  # max_norm(0.3), a keras.constraints object (RHN's form)
    assert a["dense_bias_min"] >= 0.0  # "non_neg"
    assert all(abs(n - 1.0) < 1e-5 for n in a["dense_1_kernel_norms"])  # unit_norm()
    assert a["lstm_kernel_max_norm"] <= 0.4 + 1e-6  # LSTMCell kernel_constraint=max_norm(0.4)
    assert a["lstm_recurrent_min"] >= 0.0  # recurrent_constraint="non_neg"
    assert 0.5 - 1e-6 <= a["lstm_bias_norm"] <= 1.0 + 1e-6  # bias_constraint=min_max_norm(0.5, 1.0)


def test_fit_trained_the_weights(report):
    # not only projected: every weight is away from the projection of its initial value
    assert min(report["moved"].values()) > 1e-3, report["moved"]


def test_keras_variables_carry_keras_constraints(report):
    assert report["keras_constraints"] == {
        "dense/bias": "NonNeg",
        "dense/kernel": "MaxNorm",
        "dense_1/kernel": "UnitNorm",
        "lstm_cell/bias": "MinMaxNorm",
        "lstm_cell/kernel": "MaxNorm",
        "lstm_cell/recurrent_kernel": "NonNeg",
    }
    assert report["from_config"] == {
        "lstm_cell/kernel": {"max_value": 0.4, "axis": 0},
        "lstm_cell/recurrent_kernel": {},
        "lstm_cell/bias": {"min_value": 0.5, "max_value": 1.0, "rate": 1.0, "axis": 0},
    }
