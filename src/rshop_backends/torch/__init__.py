"""The torch engine: a lowered model is a ``torch.nn.Module`` (trainable, eager).

``lower(model, dtype)`` returns a :class:`~rshop_backends.torch.layer.TorchLayer` whose
parameters are ``nn.Parameter``s named by their qualified names (``lstm_cell/kernel``).
The step runs as generated straight-line torch code inside a Python loop over time
(:mod:`.loop`), so autograd, optimizers, hooks and device/dtype moves work as usual.
"""

from __future__ import annotations

from . import layer, loop, ops

NAME = "torch"


def lower(model, dtype):
    import sys

    return layer.TorchLayer(model, dtype, sys.modules[__name__])


__all__ = ["NAME", "lower", "layer", "loop", "ops"]
