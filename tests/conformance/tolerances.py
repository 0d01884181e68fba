"""Shipped in the package: ``rshop_backends/conformance/tolerances.py`` (this name keeps the repository's imports)."""

from rshop_backends.conformance.tolerances import *  # noqa: F403
