"""Shipped in the package as ``rshop_backends.conformance.tolerances``; this name keeps the repo's imports."""

from rshop_backends.conformance.tolerances import *  # noqa: F403
