"""The jax engine: the step under ``jax.lax.scan`` and ``jax.jit``, with a pure ``apply``.

float64 needs ``jax.config.update("jax_enable_x64", True)``; rshop never turns it on.
"""

from __future__ import annotations

from . import layer, loop, ops

NAME = "jax"


def lower(model, dtype):
    import sys

    return layer.JaxLayer(model, dtype, sys.modules[__name__])


__all__ = ["NAME", "lower", "layer", "loop", "ops"]
