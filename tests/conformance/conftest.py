"""The repository's run of the conformance suite: the shipped suite's helpers, fixtures and xfail lists
(``rshop_backends.conformance``), plus the tests that stay repo-only (docs/conformance.md says which).

A third-party engine certifies itself from an installed rshop (docs/engines.md, "Certify your engine")::

    pytest --pyargs rshop_backends.conformance --rshop-engines=<name>
"""

from __future__ import annotations

from rshop_backends.conformance import xfail_lists
from rshop_backends.conformance.fixtures import layers, only_engine
from rshop_backends.conformance.runs import (
    as_tuple,
    assert_close,
    central_differences,
    harness,
    native,
    reference,
    run,
)

__all__ = [  # what the repo's test modules import from here
    "as_tuple",
    "assert_close",
    "central_differences",
    "harness",
    "layers",
    "native",
    "only_engine",
    "reference",
    "run",
]


def pytest_collection_modifyitems(config, items):
    xfail_lists.mark(config.rshop_engines, items)
