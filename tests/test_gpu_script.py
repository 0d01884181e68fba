"""bench/gpu.py (``nox -s gpu``, ``bench/gpu.sh``) is ready to run in one go: its dry run through bench/gpu.sh,
the same code on the CPU at tiny sizes, runs every part for torch in a subprocess, exits 0, and writes a report
whose numbers pass their checks.
Runs in torch's session only (one subprocess, about 30 s); on a CUDA machine the script measures instead."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def dry_run(request, tmp_path_factory):
    if "torch" not in request.config.rshop_engines:
        pytest.skip("the GPU script's dry run is checked in torch's session: torch is not among the engines under test")
    request.config.rshop_ran.add("torch")
    out = tmp_path_factory.mktemp("gpu")
    if shutil.which("bash") is None:
        pytest.skip("bench/gpu.sh is a bash script and this machine has no bash")
    cmd = ["bash", str(ROOT / "bench" / "gpu.sh"), "--dry-run", "--engines", "torch"]
    cmd += ["--out", str(out / "gpu.md"), "--json", str(out / "gpu.json")]
    env = {**os.environ, "PYTHON": sys.executable}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    results = json.loads((out / "gpu.json").read_text()) if (out / "gpu.json").exists() else None
    return proc, results, (out / "gpu.md").read_text() if (out / "gpu.md").exists() else ""


def test_exits_zero_and_says_what_it_ran(dry_run):
    proc, results, _ = dry_run
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "probe torch: " in proc.stdout
    if shutil.which("nvidia-smi") is None:
        assert "gpu.sh: no nvidia-smi here" in proc.stdout
    assert results["dry_run"] is True and results["device"] == "cpu"
    assert [(r["part"], r["engine"]) for r in results["runs"]] == [
        ("lstm", "torch"),
        ("parallel", "torch"),
        ("conformance", "torch"),
    ]
    assert not any("skipped" in r or "error" in r for r in results["runs"]), results["runs"]


def test_lstm_rows_checked_against_the_reference(dry_run):
    _, results, _ = dry_run
    rows = [row for r in results["runs"] for row in r.get("rows", ()) if row["part"] == "lstm"]
    names = {(row["workload"], row["kind"], row["impl"]) for row in rows}
    assert names == {
        (w, k, i)
        for w in ("W1", "W3")
        for k, i in [("lstm", "rshop torch"), ("lstm", "torch.nn.LSTM"), ("c1", "rshop torch")]
    }
    for row in rows:
        assert row["err"] <= 1e-4 and row["fwd"]["runs"] == row["fb"]["runs"] == 2, row
    assert next(r for r in rows if r["impl"] == "rshop torch" and r["kind"] == "lstm")["path"].startswith(
        "fused kernel"
    )


def test_custom_cell_parity_within_the_tolerance_table(dry_run):
    _, results, _ = dry_run
    [parity] = [row for r in results["runs"] for row in r.get("rows", ()) if row["part"] == "parity"]
    assert parity["met"] and parity["forward_err"] <= 1e-5 and parity["grad_rel_err"] <= 2e-4, parity


def test_parallel_rows_and_conformance_counts(dry_run):
    _, results, _ = dry_run
    par = {row["impl"]: row for r in results["runs"] for row in r.get("rows", ()) if row["part"] == "parallel"}
    assert set(par) == {"rshop sequential", "rshop parallel (scan)"}
    assert par["rshop parallel (scan)"]["path"].startswith("associative scan"), par
    assert all(row["err"] <= 1e-3 for row in par.values())
    [conf] = [r for r in results["runs"] if r["part"] == "conformance"]
    assert conf["failures"] == conf["errors"] == 0 and conf["tests"] - conf["not_run"] >= 10, conf
    assert "--rshop-device=cpu" in conf["command"]


def test_report_says_dry_run_and_judges_nothing_on_a_gpu(dry_run):
    _, _, page = dry_run
    assert page.startswith("# GPU benchmarks — dry run on the CPU")
    assert "None of these is a GPU number." in page
    assert "| LSTM layer forward + backward at W3 ≤ 1.2 × torch.nn.LSTM (cuDNN) |" in page  # noqa: RUF001
    assert "| conformance suite on cpu: torch |" in page and "**not met**" not in page and " met |" not in page


def test_spent_budget_skips_every_part_and_require_cuda_fails(dry_run, tmp_path):
    """No ``--dry-run``, the budget spent at once and ``--require-cuda`` (what nox -s gpu and gpu.sh pass where
    nvidia-smi finds a GPU): every part is skipped and says why, the report is still written; on a machine where
    torch sees no CUDA, the script says so, falls back to the dry run, and ``--require-cuda`` makes that a failure
    with the reason (exit 1) rather than a quiet dry run."""
    cmd = [sys.executable, str(ROOT / "bench" / "gpu.py"), "--engines", "torch", "--budget-s", "0", "--require-cuda"]
    cmd += ["--out", str(tmp_path / "gpu.md"), "--json", str(tmp_path / "gpu.json")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    results = json.loads((tmp_path / "gpu.json").read_text())
    assert [r["skipped"] for r in results["runs"]] == ["the budget of 0 s was spent before this part"] * 3
    assert "## Skipped" in (tmp_path / "gpu.md").read_text()
    if results["probes"]["torch"]["cuda"]:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        return
    assert "gpu.py: no CUDA device for any engine: every CUDA part is skipped" in proc.stdout
    assert results["dry_run"] is True
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "FAILED --require-cuda: expected an engine that sees a CUDA device, received none" in proc.stdout


def test_unknown_engine_or_part_refused(dry_run):
    cmd = [sys.executable, str(ROOT / "bench" / "gpu.py"), "--engines", "torch,mxnet", "--parts", "lstm,speed"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2, proc.stderr
    assert "expected engines among ('torch', 'jax', 'tensorflow') and parts among" in proc.stderr
    assert "received ['mxnet', 'speed']" in proc.stderr
