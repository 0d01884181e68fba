"""Conformance-suite hooks of the numpy engine (every engine has this module)."""

from __future__ import annotations

from typing import Any

import numpy as np

from rshop_core.errors import RshopConfigError, RshopNotImplementedError

from .arrays import GRADIENTS, float64_scope, loss_grads, to_native, to_numpy

__all__ = ["GRADIENTS", "float64_scope", "input_grads", "loss_grads", "to_native", "to_numpy", "use_device"]


def use_device(device: str) -> None:
    """numpy runs on the CPU only: ``"cpu"`` is accepted, anything else refused."""
    if device != "cpu":
        raise RshopConfigError(
            f"numpy engine, --rshop-device: expected 'cpu' (numpy's only device), received {device!r}."
        )


def input_grads(fn: Any, args: list[Any], weights_out: np.ndarray, wrt: list[int]) -> list[np.ndarray]:
    """Gradients of ``sum(fn(*args) * weights_out)`` w.r.t. ``args[i]`` for ``i`` in ``wrt`` (numpy has none)."""
    raise RshopNotImplementedError("engine 'numpy': expected gradients, received an inference-only engine.")
