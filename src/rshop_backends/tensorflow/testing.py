"""Conformance-suite hooks of the tensorflow engine (every engine has this module)."""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from rshop_core.errors import RshopConfigError

from .arrays import GRADIENTS, float64_scope, loss_grads, to_native, to_numpy

__all__ = ["GRADIENTS", "float64_scope", "input_grads", "loss_grads", "to_native", "to_numpy", "use_device"]


def use_device(device: str) -> None:
    """Run the suite on ``device`` (``"cuda"``, ``"cuda:1"``, ``"gpu"``, ``"cpu"``): only that GPU is visible
    (tensorflow places ops and variables on it), or none for ``"cpu"``; TF32 off, so the float32 tolerances
    hold. Call it before tensorflow first touches a device. ``--rshop-device`` of the pytest plugin."""
    platform, _, index = device.partition(":")
    if platform not in ("cpu", "cuda", "gpu") or (index and not index.isdigit()):
        raise RshopConfigError(
            f"tensorflow engine, --rshop-device: expected 'cpu', 'cuda' or 'cuda:<index>', received {device!r}."
        )
    gpus = tf.config.list_physical_devices("GPU")
    if platform != "cpu" and int(index or 0) >= len(gpus):
        raise RshopConfigError(
            f"tensorflow engine, --rshop-device: expected a GPU tensorflow can use, received {device!r} with "
            f"{len(gpus)} visible (tensorflow {tf.__version__}, CUDA build: {tf.test.is_built_with_cuda()}). "
            'Install tensorflow\'s CUDA build (pip install "tensorflow[and-cuda]"), or leave --rshop-device out.'
        )
    try:
        tf.config.set_visible_devices([] if platform == "cpu" else [gpus[int(index or 0)]], "GPU")
    except RuntimeError as e:  # "Visible devices cannot be modified after being initialized"
        raise RshopConfigError(
            f"tensorflow engine, --rshop-device: expected to choose the device before tensorflow used one, "
            f"received {device!r} after ({e})."
        ) from None
    tf.config.experimental.enable_tensor_float_32_execution(False)


def input_grads(fn: Any, args: list[Any], weights_out: np.ndarray, wrt: list[int]) -> list[np.ndarray]:
    """Gradients of ``sum(fn(*args) * weights_out)`` w.r.t. ``args[i]`` for ``i`` in ``wrt``, as numpy arrays."""
    with tf.GradientTape() as tape:
        for i in wrt:
            tape.watch(args[i])
        y = fn(*args)
        loss = tf.reduce_sum(y * tf.constant(weights_out, dtype=y.dtype))
    grads = tape.gradient(loss, [args[i] for i in wrt])
    return [np.zeros(tuple(args[i].shape)) if g is None else np.asarray(g) for i, g in zip(wrt, grads)]
