"""Keras 3 anchors on the backend chosen by KERAS_BACKEND (set before keras is imported:
the harness runs each backend in its own subprocess).

``keras.layers.LSTM``, and ``keras.layers.RNN`` over a custom cell written with ``keras.ops``:
the LSTM and C1 (peephole).  Timed the backend's native way: TF inside ``tf.function``; JAX
through ``stateless_call`` under ``jax.jit``; torch eagerly with autograd.
"""

from __future__ import annotations

from adapters import jax_impl, tf_impl, torch_impl


def _cell_class():
    import keras
    from keras import ops

    class KerasCell(keras.layers.Layer):
        """LSTM (``peephole=False``) or C1 step, Keras gate order [i|f|c|o]."""

        def __init__(self, units, peephole, **kwargs):
            super().__init__(**kwargs)
            self.units, self.peephole = units, peephole
            self.state_size, self.output_size = [units, units], units

        def build(self, input_shape):
            u = self.units
            self.kernel = self.add_weight(shape=(input_shape[-1], 4 * u), name="kernel")
            self.recurrent_kernel = self.add_weight(shape=(u, 4 * u), name="recurrent_kernel")
            self.bias = self.add_weight(shape=(4 * u,), name="bias", initializer="zeros")
            if self.peephole:
                self.peep = [self.add_weight(shape=(u,), name=f"peephole_{g}", initializer="zeros") for g in "ifo"]

        def call(self, x, states):
            h, c = states
            z = ops.matmul(x, self.kernel) + ops.matmul(h, self.recurrent_kernel) + self.bias
            zi, zf, zg, zo = ops.split(z, 4, axis=-1)
            if self.peephole:
                pi, pf, po = self.peep
                c = ops.sigmoid(zf + pf * c) * c + ops.sigmoid(zi + pi * c) * ops.tanh(zg)
                h = ops.sigmoid(zo + po * c) * ops.tanh(c)
            else:
                c = ops.sigmoid(zf) * c + ops.sigmoid(zi) * ops.tanh(zg)
                h = ops.sigmoid(zo) * ops.tanh(c)
            return h, [h, c]

    return KerasCell


def _layer(kind, w, x_np, builtin):
    import keras

    hidden = w["recurrent_kernel"].shape[0]
    if builtin:
        layer = keras.layers.LSTM(hidden, return_sequences=True)
    else:
        layer = keras.layers.RNN(_cell_class()(hidden, peephole=kind == "c1"), return_sequences=True)
    layer.build((None, None, x_np.shape[-1]))
    order = ["kernel", "recurrent_kernel", "bias"]
    if kind == "c1":
        order += ["peephole_i", "peephole_f", "peephole_o"]
    layer.set_weights([w[k] for k in order])
    return layer


def _native(layer, x_np):
    """Time ``layer`` the active backend's native way."""
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return tf_impl(lambda x: layer(x), [v.value for v in layer.trainable_variables], tf.constant(x_np))
    if backend == "jax":
        import jax.numpy as jnp

        frozen = [v.value for v in layer.non_trainable_variables]

        def apply(params, x):
            return layer.stateless_call(params, frozen, x)[0]

        return jax_impl(apply, [v.value for v in layer.trainable_variables], jnp.asarray(x_np))
    if backend == "torch":
        import torch

        torch.set_num_threads(2)
        x = torch.from_numpy(x_np)
        return torch_impl(lambda: layer(x), [v.value for v in layer.trainable_variables])
    raise ValueError(f"unsupported Keras backend {backend!r}")


def lstm(w, x_np):
    return _native(_layer("lstm", w, x_np, builtin=True), x_np)


def rnn_cell(kind, w, x_np):
    return _native(_layer(kind, w, x_np, builtin=False), x_np)
