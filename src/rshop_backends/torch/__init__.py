"""The torch engine: a lowered model is a ``torch.nn.Module`` (trainable, eager).

``lower(model, dtype)`` returns a :class:`~rshop_backends.torch.layer.TorchLayer` whose
parameters are ``nn.Parameter``s named by their qualified names (``lstm_cell/kernel``).
The step runs as generated straight-line torch code inside a Python loop over time
(:mod:`.loop`), so autograd, optimizers, hooks and device/dtype moves work as usual.
"""

from __future__ import annotations

from ..engine import EngineSpec
from . import layer, loop, ops, parallel

NAME = "torch"


# The default optimisation pipeline (rshop_core.passes): each op of the eager loop has a fixed
# cost, so fewer ops per step pays.
PASSES = ("cse", "fuse_matmuls", "licm", "hoist_inputs")


# an eager loop: each op of the step costs a dispatch and an autograd node (the cost rule counts them)
ENGINE = EngineSpec(NAME, layer.TorchLayer, ops, PASSES, parallel=parallel, per_op_loop=True)
lower = ENGINE.lower


__all__ = ["ENGINE", "NAME", "PASSES", "lower", "layer", "loop", "ops", "parallel"]
