"""Test-wide settings: which engines to test, strictness, and the isolation check.

Engines come from ``--engines`` or ``RSHOP_TEST_ENGINES`` (comma separated; default: every
installed built-in engine). An unknown name fails the run at once. When the nox session
sets ``RSHOP_EXPECT_ONLY=<engine>``, the run fails unless that engine ran and no other
framework was imported.
"""

from __future__ import annotations

import os
import sys

import pytest

BUILTIN = ("numpy", "jax", "torch", "tensorflow")
FRAMEWORKS = {"jax": "jax", "torch": "torch", "tensorflow": "tensorflow"}


def pytest_addoption(parser):
    parser.addoption(
        "--engines",
        default=os.environ.get("RSHOP_TEST_ENGINES"),
        help="comma-separated engines to test (default: every installed one)",
    )


def selected_engines(config) -> list:
    from rshop_backends import registry

    raw = config.getoption("--engines")
    known = registry.engines()
    if not raw:
        return [n for n in BUILTIN if known[n].installed()]
    names = [n.strip() for n in raw.split(",") if n.strip()]
    bad = [n for n in names if n not in known]
    if bad:
        raise pytest.UsageError(f"unknown engine(s) {bad}; known: {sorted(known)}")
    missing = [n for n in names if not known[n].installed()]
    if missing:
        raise pytest.UsageError(f"engine(s) {missing} requested but not installed")
    return names


def pytest_configure(config):
    config.rshop_engines = selected_engines(config)
    config.rshop_ran = set()
    config.rshop_reports = []  # lines tests want in the run's summary (e.g. the fuzzer's count and time)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    for line in getattr(config, "rshop_reports", []):
        terminalreporter.write_line(line)


def pytest_report_header(config):
    return f"rshop engines under test: {', '.join(config.rshop_engines)}"


def pytest_generate_tests(metafunc):
    if "engine" in metafunc.fixturenames:
        metafunc.parametrize("engine", metafunc.config.rshop_engines)
    if "trainable_engine" in metafunc.fixturenames:
        trainable = [e for e in metafunc.config.rshop_engines if e != "numpy"]
        if not trainable:  # say why instead of pytest's anonymous "empty parameter set"
            trainable = [
                pytest.param(
                    "numpy",
                    marks=pytest.mark.skip(
                        reason="numpy is an inference-only engine: gradient tests need jax, torch or tensorflow"
                    ),
                )
            ]
        metafunc.parametrize("trainable_engine", trainable)


@pytest.fixture(autouse=True)
def _record_engine(request):
    for key in ("engine", "trainable_engine"):
        if key in request.fixturenames:
            request.config.rshop_ran.add(request.getfixturevalue(key))
    yield


def _strict_frameworks():
    """Comparable numbers across engines: no TF32, deterministic threads."""
    if "torch" in sys.modules:
        import torch

        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False


@pytest.fixture(autouse=True)
def _strict():
    _strict_frameworks()
    yield


def _imported_frameworks() -> list:
    return [engine for engine, module in FRAMEWORKS.items() if module in sys.modules]


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """pytest-xdist: what a worker process ran and imported, gathered by the controlling process."""
    out = getattr(node, "workeroutput", {})
    node.config.rshop_ran.update(out.get("rshop_ran", ()))
    node.config.rshop_worker_imports = getattr(node.config, "rshop_worker_imports", set()) | set(
        out.get("rshop_imported", ())
    )


def pytest_sessionfinish(session, exitstatus):
    config = session.config
    if hasattr(config, "workeroutput"):  # an xdist worker: report to the controller, which checks
        config.workeroutput["rshop_ran"] = sorted(config.rshop_ran)
        config.workeroutput["rshop_imported"] = _imported_frameworks()
        return
    expect = os.environ.get("RSHOP_EXPECT_ONLY")
    if not expect:
        return
    problems = []
    if expect not in config.rshop_ran and session.testscollected:
        problems.append(f"engine {expect!r} was expected to run but no test used it")
    imported = set(_imported_frameworks()) | getattr(config, "rshop_worker_imports", set())
    for engine in sorted(imported):
        if engine != expect:
            problems.append(f"framework {FRAMEWORKS[engine]!r} was imported in the {expect!r} session")
    if problems:
        sys.stderr.write("\nrshop isolation check FAILED:\n  " + "\n  ".join(problems) + "\n")
        session.exitstatus = 1
