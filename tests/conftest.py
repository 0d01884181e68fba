"""Test-wide settings: which engines to test, strictness, and the isolation check.

Engines come from the rshop pytest plugin (``rshop_backends.pytest_plugin``): ``--rshop-engines`` (here also
``--engines``) or ``RSHOP_TEST_ENGINES`` (comma separated; default: every installed engine). An unknown
name fails the run at once. When the nox session sets ``RSHOP_EXPECT_ONLY=<engine>``, the run fails unless
that engine ran and no other framework was imported.
"""

from __future__ import annotations

import os
import sys

import pytest

from rshop_backends import pytest_plugin
from rshop_backends.conformance.fixtures import record_engine, strict_frameworks  # autouse, for every test

__all__ = ["record_engine", "strict_frameworks"]

FRAMEWORKS = {"jax": "jax", "torch": "torch", "tensorflow": "tensorflow"}


def pytest_addoption(parser, pluginmanager):
    # the rshop pytest plugin (``--rshop-engines``, ``rshop_engine``) is registered by its entry point when
    # rshop is installed; from a source tree without one, here
    pytest_plugin.ensure_registered(pluginmanager)
    parser.addoption(
        "--engines",
        dest="rshop_engines",
        default=None,
        help="the repository's name for --rshop-engines: comma-separated engines to test",
    )


def pytest_configure(config):
    config.rshop_reports = []  # lines tests want in the run's summary (e.g. the fuzzer's count and time)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    for line in getattr(config, "rshop_reports", []):
        terminalreporter.write_line(line)


def pytest_generate_tests(metafunc):
    pytest_plugin.parametrize_engines(metafunc)


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
