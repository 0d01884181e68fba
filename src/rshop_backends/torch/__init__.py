"""The torch engine: a lowered model is a ``torch.nn.Module`` (trainable, eager).

``lower(model, dtype)`` returns a :class:`~rshop_backends.torch.layer.TorchLayer` whose
parameters are ``nn.Parameter``s named by their qualified names (``lstm_cell/kernel``).
The step runs as generated straight-line torch code inside a Python loop over time
(:mod:`.loop`), so autograd, optimizers, hooks and device/dtype moves work as usual.
"""

from __future__ import annotations

from . import layer, loop, ops

NAME = "torch"


# The default optimisation pipeline (rshop_core.passes): each op of the eager loop has a fixed
# cost, so fewer ops per step pays.
PASSES = ("cse", "fuse_matmuls", "licm", "hoist_inputs")


def lower(model, dtype, passes=None, fast_path=True):
    import sys

    return layer.TorchLayer(model, dtype, sys.modules[__name__], passes=passes, fast_path=fast_path)


__all__ = ["NAME", "PASSES", "lower", "layer", "loop", "ops"]
