"""The conformance tolerances as the shipped suite reads them: the package's one table,
``rshop_backends.tolerances`` (mirrored in docs/conformance.md, explained in docs/parity.md), so that the suite,
:func:`rshop_backends.parity.compare` and ``rshop check`` hold engines to the same numbers."""

from rshop_backends.tolerances import FD_EPS, FORWARD_ATOL, GRAD_RTOL, SAME_ENGINE_ATOL

__all__ = ["FD_EPS", "FORWARD_ATOL", "GRAD_RTOL", "SAME_ENGINE_ATOL"]
