"""The numpy engine: the float64-capable reference every other engine is checked against."""

from __future__ import annotations

from . import layer, loop, ops

NAME = "numpy"


def lower(model, dtype):
    import sys

    return layer.NumpyLayer(model, dtype, sys.modules[__name__])


__all__ = ["NAME", "lower", "layer", "loop", "ops"]
