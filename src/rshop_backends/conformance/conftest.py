"""pytest settings of the shipped conformance suite: engines from ``--rshop-engines`` (the rshop pytest
plugin), each engine's xfail list, and the shared fixtures."""

from __future__ import annotations

import pytest

from rshop_backends import pytest_plugin
from rshop_backends.conformance import xfail_lists
from rshop_backends.conformance.fixtures import layers, record_engine, strict_frameworks

__all__ = ["layers", "record_engine", "strict_frameworks"]  # fixtures, found by pytest in this module


def _engines(config: pytest.Config) -> list[str]:
    if not hasattr(config, "rshop_engines"):
        raise pytest.UsageError(
            "rshop_backends.conformance: expected the rshop pytest plugin to be active, received a run without "
            "it. Reinstall rshop (it registers the plugin as the 'pytest11' entry point 'rshop'), drop "
            "'-p no:rshop', or from a source tree pass '-p rshop_backends.pytest_plugin'."
        )
    return list(config.rshop_engines)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    _engines(metafunc.config)
    pytest_plugin.parametrize_engines(metafunc)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    xfail_lists.mark(_engines(config), items)
