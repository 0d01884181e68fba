"""Conformance-suite hooks of the torch engine (every engine has this module)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from rshop_core.errors import RshopConfigError

from .arrays import GRADIENTS, float64_scope, loss_grads, to_native, to_numpy

__all__ = ["GRADIENTS", "float64_scope", "input_grads", "loss_grads", "to_native", "to_numpy", "use_device"]


def use_device(device: str) -> None:
    """Run the suite on ``device`` (``"cuda"``, ``"cuda:1"``, ``"cpu"``): torch's default device becomes
    ``device``, so layers are built there and :func:`to_native` puts arrays there; matmuls and cuDNN run in
    full float32 (TF32 off), so the float32 tolerances hold. ``--rshop-device`` of the pytest plugin."""
    try:
        where = torch.device(device)
    except RuntimeError:
        where = None
    if where is None or where.type not in ("cpu", "cuda"):
        raise RshopConfigError(
            f"torch engine, --rshop-device: expected 'cpu', 'cuda' or 'cuda:<index>', received {device!r}."
        )
    if where.type == "cuda" and not torch.cuda.is_available():
        raise RshopConfigError(
            f"torch engine, --rshop-device: expected a device torch can use, received {device!r} while "
            f"torch.cuda.is_available() is False (torch {torch.__version__}, CUDA build: {torch.version.cuda}). "
            "Run on a machine with a GPU and a CUDA build of torch, or leave --rshop-device out."
        )
    if where.type == "cuda" and (where.index or 0) >= torch.cuda.device_count():
        raise RshopConfigError(
            f"torch engine, --rshop-device: expected one of the {torch.cuda.device_count()} CUDA devices, "
            f"received {device!r}."
        )
    torch.set_default_device(where)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False


def input_grads(fn: Any, args: list[Any], weights_out: np.ndarray, wrt: list[int]) -> list[np.ndarray]:
    """Gradients of ``sum(fn(*args) * weights_out)`` w.r.t. ``args[i]`` for ``i`` in ``wrt``, as numpy arrays."""
    args = [a.detach().clone().requires_grad_(i in wrt) for i, a in enumerate(args)]
    y = fn(*args)
    loss = (y * torch.as_tensor(weights_out, dtype=y.dtype, device=y.device)).sum()
    if not loss.requires_grad:  # nothing reaches the output (an op registered differentiable=False)
        return [np.zeros(tuple(args[i].shape), to_numpy(args[i]).dtype) for i in wrt]
    grads = torch.autograd.grad(loss, [args[i] for i in wrt], allow_unused=True)
    return [np.zeros(tuple(args[i].shape)) if g is None else to_numpy(g) for i, g in zip(wrt, grads)]
