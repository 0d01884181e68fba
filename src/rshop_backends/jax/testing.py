"""Conformance-suite hooks of the jax engine (every engine has this module)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rshop_core.errors import RshopConfigError

from .arrays import GRADIENTS, float64_scope, loss_grads, to_native, to_numpy

__all__ = ["GRADIENTS", "float64_scope", "input_grads", "loss_grads", "to_native", "to_numpy", "use_device"]


def use_device(device: str) -> None:
    """Run the suite on ``device`` (``"cuda"``, ``"cuda:1"``, ``"gpu"``, ``"cpu"``): jax's default device
    becomes that one, and matmuls run at ``"highest"`` precision (no TF32 on a GPU), so the float32
    tolerances hold. ``--rshop-device`` of the pytest plugin."""
    platform, _, index = device.partition(":")
    try:
        devices = jax.devices(platform)
    except RuntimeError as e:
        raise RshopConfigError(
            f"jax engine, --rshop-device: expected a platform jax has, received {device!r} ({e}). Install jax "
            'with that platform\'s plugin (pip install "jax[cuda12]") on a machine that has it, or leave '
            "--rshop-device out."
        ) from None
    if (index and not index.isdigit()) or int(index or 0) >= len(devices):
        raise RshopConfigError(
            f"jax engine, --rshop-device: expected one of the {len(devices)} {platform} devices "
            f"({platform}:0 ...), received {device!r}."
        )
    jax.config.update("jax_default_device", devices[int(index or 0)])
    jax.config.update("jax_default_matmul_precision", "highest")


def input_grads(fn: Any, args: list[Any], weights_out: np.ndarray, wrt: list[int]) -> list[np.ndarray]:
    """Gradients of ``sum(fn(*args) * weights_out)`` w.r.t. ``args[i]`` for ``i`` in ``wrt``, as numpy arrays."""

    def loss(*a: Any) -> Any:
        y = fn(*a)
        return jnp.sum(y * jnp.asarray(weights_out, dtype=y.dtype))

    return [np.asarray(g) for g in jax.grad(loss, argnums=tuple(wrt))(*args)]
