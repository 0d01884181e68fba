"""Shipped in the package: ``rshop_backends/conformance/composition_cases.py`` (this name keeps the repository's imports)."""

from rshop_backends.conformance.composition_cases import *  # noqa: F403
