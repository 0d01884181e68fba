"""The numpy engine: the float64-capable reference every other engine is checked against."""

from __future__ import annotations

from . import layer, loop, ops

NAME = "numpy"


# The default optimisation pipeline (rshop_core.passes): the reference runs the step exactly as written.
PASSES = ()


def lower(model, dtype, passes=None, fast_path=True):
    import sys

    return layer.NumpyLayer(model, dtype, sys.modules[__name__], passes=passes, fast_path=fast_path)


__all__ = ["NAME", "PASSES", "lower", "layer", "loop", "ops"]
