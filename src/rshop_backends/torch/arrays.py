"""Array hooks of the torch engine (every engine has this module): numpy <-> engine arrays, the scope where
float64 arrays exist, and parameter gradients of a projected output. Public through
:func:`rshop_backends.to_native`, :func:`rshop_backends.to_numpy` and :mod:`rshop_backends.parity`."""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import torch

GRADIENTS = True  # whether loss_grads gives gradients (the conformance suite and compare read it)


def float64_scope() -> contextlib.AbstractContextManager[Any]:
    """Where float64 arrays can exist: everywhere on this engine."""
    return contextlib.nullcontext()


def to_native(a: np.ndarray, dtype: str) -> Any:
    """``a`` as a tensor of ``dtype`` on torch's default device (the CPU unless ``torch.set_default_device``
    or ``with torch.device(...)`` says otherwise), where a new torch layer is built too."""
    return torch.from_numpy(np.array(a, dtype=dtype)).to(torch.get_default_device())


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
    loss = (y * torch.as_tensor(weights_out, dtype=y.dtype, device=y.device)).sum()
    if loss.requires_grad:  # False when no trainable parameter reaches the output
        loss.backward()
    return {
        k: np.zeros(tuple(p.shape), to_numpy(p).dtype) if p.grad is None else to_numpy(p.grad)
        for k, p in layer.named_parameters()
    }
