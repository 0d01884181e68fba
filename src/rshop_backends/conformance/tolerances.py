"""The one table of conformance tolerances (mirrored in docs/conformance.md).

Values and gradients in the cases are O(1); errors are absolute maxima over all
elements. Gradients are compared relative to the largest reference gradient entry.
"""

# engine computing in float32 vs the numpy float64 reference: outputs and final states
FORWARD_ATOL = {"float32": 1e-5, "float64": 1e-12}
# engine autodiff vs float64 central differences (eps below), relative to max |gradient|
GRAD_RTOL = {"float32": 2e-4, "float64": 1e-7}
FD_EPS = 1e-6
# the same engine with and without unroll / at different lengths: reordering only
SAME_ENGINE_ATOL = {"float32": 2e-6, "float64": 1e-13}
