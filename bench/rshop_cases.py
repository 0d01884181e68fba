"""rshop itself: the LSTMCell layer and C1 lowered to torch, jax and tensorflow.

``lower`` keywords pick a variant (``fast_path=False``: the generic loop; ``passes=()``: no
optimisation pass), so the report shows what the fast path and the passes are worth.
"""

from __future__ import annotations

from adapters import jax_impl, tf_impl, torch_impl
from workloads import rshop_model


def model_with(kind, w, x_np):
    """A fresh rshop model of ``kind`` holding exactly the weights ``w`` (local names)."""
    model = rshop_model(kind, x_np.shape[-1], w["recurrent_kernel"].shape[0])
    model.set_weights({k: w[k.rsplit("/", 1)[1]] for k in model.get_weights()})
    return model


def on_torch(kind, w, x_np, **lower):
    import torch

    torch.set_num_threads(2)
    layer = model_with(kind, w, x_np).lower("torch", **lower)
    x = torch.from_numpy(x_np)
    return torch_impl(lambda: layer(x), list(layer.parameters()))


def on_jax(kind, w, x_np, **lower):
    import jax.numpy as jnp

    layer = model_with(kind, w, x_np).lower("jax", **lower)
    return jax_impl(layer.apply, layer.params, jnp.asarray(x_np))


def on_tensorflow(kind, w, x_np, **lower):
    import tensorflow as tf

    layer = model_with(kind, w, x_np).lower("tensorflow", **lower)
    return tf_impl(layer, list(layer.trainable_variables), tf.constant(x_np))


def reference(kind, w, x_np):
    """The numpy engine's forward output: what every implementation must reproduce."""
    return model_with(kind, w, x_np).lower("numpy")(x_np)
