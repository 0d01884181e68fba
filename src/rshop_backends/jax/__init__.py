"""The jax engine: the step under ``jax.lax.scan`` and ``jax.jit``, with a pure ``apply``.

float64 needs ``jax.config.update("jax_enable_x64", True)``; rshop never turns it on.
"""

from __future__ import annotations

from ..engine import EngineSpec
from . import layer, loop, ops, parallel

NAME = "jax"


# The default optimisation pipeline (rshop_core.passes). No hoist_inputs: XLA runs the loop
# with x @ W inside it faster than with it hoisted (measured: docs/performance.md).
PASSES = ("cse", "fuse_matmuls", "licm")
# Under jax.grad / value_and_grad (seen at trace time): gates split before the add where the cost
# rule allows it (rshop_core.passes.cost: only where it removes FLOPs from the loop; an LSTM's 2
# products becoming 8 slowed other cells' backward and the first compile, decision 93).
GRAD_PASSES = ("cse", "fuse_matmuls", "split_gates", "licm")


ENGINE = EngineSpec(NAME, layer.JaxLayer, ops, PASSES, grad_passes=GRAD_PASSES, parallel=parallel)
lower = ENGINE.lower


__all__ = ["ENGINE", "NAME", "GRAD_PASSES", "PASSES", "lower", "layer", "loop", "ops", "parallel"]
