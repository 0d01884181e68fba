"""The numpy engine: the float64-capable reference every other engine is checked against."""

from __future__ import annotations

from ..engine import EngineSpec
from . import layer, loop, ops, parallel

NAME = "numpy"


# The default optimisation pipeline (rshop_core.passes): the reference runs the step exactly as written.
PASSES = ()


ENGINE = EngineSpec(NAME, layer.NumpyLayer, ops, PASSES, parallel=parallel)
lower = ENGINE.lower


__all__ = ["ENGINE", "NAME", "PASSES", "lower", "layer", "loop", "ops", "parallel"]
