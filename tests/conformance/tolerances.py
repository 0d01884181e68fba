"""The conformance tolerances: one table, kept in the package (``rshop_backends.tolerances``, mirrored in
docs/conformance.md and explained in docs/parity.md) so that ``compare`` and the suite use the same numbers."""

from rshop_backends.tolerances import FD_EPS, FORWARD_ATOL, GRAD_RTOL, SAME_ENGINE_ATOL

__all__ = ["FD_EPS", "FORWARD_ATOL", "GRAD_RTOL", "SAME_ENGINE_ATOL"]
