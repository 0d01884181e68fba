"""Runs one engine's data-parallel child script in a fresh process and returns its ``REPORT`` json: the
device count (virtual jax devices, logical TF CPUs) must be set before the framework starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent


def run_child(script: str, env: dict[str, str] | None = None, timeout: int = 300) -> dict:
    src = str(HERE.parents[1] / "src")
    path = os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH", "")) if p)
    full = {**os.environ, "PYTHONPATH": path, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    proc = subprocess.run(
        [sys.executable, str(HERE / script)], capture_output=True, text=True, env=full, timeout=timeout
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("REPORT ")]
    assert proc.returncode == 0 and lines, f"{script} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return json.loads(lines[-1][len("REPORT ") :])


def run_example(script: str, *args: str, env: dict[str, str] | None = None, timeout: int = 300) -> float:
    """Run ``examples/<script>`` (a few steps) and return the difference to one device it prints last."""
    src = str(HERE.parents[1] / "src")
    path = os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH", "")) if p)
    full = {**os.environ, "PYTHONPATH": path, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    example = HERE.parents[1] / "examples" / script
    proc = subprocess.run(
        [sys.executable, str(example), *args], capture_output=True, text=True, env=full, timeout=timeout
    )
    checks = [ln for ln in proc.stdout.splitlines() if "max |" in ln]
    assert proc.returncode == 0 and checks, f"{script} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return float(checks[-1].rsplit("=", 1)[1])
