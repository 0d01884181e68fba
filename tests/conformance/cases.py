"""Shipped in the package as ``rshop_backends.conformance.cases``; this name keeps the repo's imports."""

from rshop_backends.conformance.cases import *  # noqa: F403
