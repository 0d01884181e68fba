"""Shipped in the package: ``rshop_backends/conformance/cases.py`` (this name keeps the repository's imports)."""

from rshop_backends.conformance.cases import *  # noqa: F403
