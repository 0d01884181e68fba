"""Shipped in the package as ``rshop_backends.conformance.composition_cases``; this name keeps the repo's imports."""

from rshop_backends.conformance.composition_cases import *  # noqa: F403
