"""The one table of parity tolerances: the conformance suite's and :func:`rshop_backends.parity.compare`'s.

Errors are absolute maxima over all elements of one result. The conformance cases' values are O(1);
:mod:`~rshop_backends.parity` scales a limit by ``max(1, max |reference|)`` so that a model whose
outputs are large is held to the same number of significant digits (for O(1) values it is the same
test). Why these numbers: docs/parity.md.
"""

from __future__ import annotations

# engine computing in float32 vs the numpy float64 reference: outputs and final states
FORWARD_ATOL = {"float32": 1e-5, "float64": 1e-12}
# engine autodiff vs float64 central differences (eps below), relative to max |gradient|
GRAD_RTOL = {"float32": 2e-4, "float64": 1e-7}
FD_EPS = 1e-6
# the same engine with and without unroll / at different lengths: reordering only
SAME_ENGINE_ATOL = {"float32": 2e-6, "float64": 1e-13}

__all__ = ["FD_EPS", "FORWARD_ATOL", "GRAD_RTOL", "SAME_ENGINE_ATOL"]
