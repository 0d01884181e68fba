"""Conformance-suite hooks of the torch engine (every engine has this module)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .arrays import GRADIENTS, float64_scope, loss_grads, to_native, to_numpy

__all__ = ["GRADIENTS", "float64_scope", "input_grads", "loss_grads", "to_native", "to_numpy"]


def input_grads(fn: Any, args: list[Any], weights_out: np.ndarray, wrt: list[int]) -> list[np.ndarray]:
    """Gradients of ``sum(fn(*args) * weights_out)`` w.r.t. ``args[i]`` for ``i`` in ``wrt``, as numpy arrays."""
    args = [a.detach().clone().requires_grad_(i in wrt) for i, a in enumerate(args)]
    y = fn(*args)
    loss = (y * torch.as_tensor(weights_out, dtype=y.dtype)).sum()
    if not loss.requires_grad:  # nothing reaches the output (an op registered differentiable=False)
        return [np.zeros(tuple(args[i].shape), to_numpy(args[i]).dtype) for i in wrt]
    grads = torch.autograd.grad(loss, [args[i] for i in wrt], allow_unused=True)
    return [np.zeros(tuple(args[i].shape)) if g is None else to_numpy(g) for i, g in zip(wrt, grads)]
