"""Conformance-suite hooks of the torch engine (every engine has this module)."""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import torch


def float64_scope() -> contextlib.AbstractContextManager[Any]:
    """Where float64 arrays can exist: everywhere on this engine."""
    return contextlib.nullcontext()


def to_native(a: np.ndarray, dtype: str) -> Any:
    return torch.from_numpy(np.array(a, dtype=dtype))


def to_numpy(a: Any) -> np.ndarray:
    return a.detach().cpu().numpy()


def loss_grads(
    layer: Any, x: Any, weights_out: Any, initial_state: Any = None, constants: Any = None, **call: Any
) -> dict[str, np.ndarray]:
    """Gradients of ``sum(output * weights_out)`` w.r.t. every parameter, as numpy arrays."""
    layer.zero_grad(set_to_none=True)
    call.setdefault("training", False)  # as on every engine (the module mode would say train)
    y = layer(x, initial_state=initial_state, constants=constants, **call)
    y = y[0] if isinstance(y, tuple) else y
    loss = (y * torch.as_tensor(weights_out, dtype=y.dtype)).sum()
    if loss.requires_grad:  # False when no trainable parameter reaches the output
        loss.backward()
    return {
        k: np.zeros(tuple(p.shape), p.detach().numpy().dtype) if p.grad is None else to_numpy(p.grad)
        for k, p in layer.named_parameters()
    }


def input_grads(fn: Any, args: list[Any], weights_out: np.ndarray, wrt: list[int]) -> list[np.ndarray]:
    """Gradients of ``sum(fn(*args) * weights_out)`` w.r.t. ``args[i]`` for ``i`` in ``wrt``, as numpy arrays."""
    args = [a.detach().clone().requires_grad_(i in wrt) for i, a in enumerate(args)]
    y = fn(*args)
    loss = (y * torch.as_tensor(weights_out, dtype=y.dtype)).sum()
    if not loss.requires_grad:  # nothing reaches the output (an op registered differentiable=False)
        return [np.zeros(tuple(args[i].shape), to_numpy(args[i]).dtype) for i in wrt]
    grads = torch.autograd.grad(loss, [args[i] for i in wrt], allow_unused=True)
    return [np.zeros(tuple(args[i].shape)) if g is None else to_numpy(g) for i, g in zip(wrt, grads)]
