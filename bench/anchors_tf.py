"""TensorFlow anchors: hand-written ``tf.scan`` loops in ``tf.function`` for the LSTM and C1."""

from __future__ import annotations

from adapters import tf_impl


def scan(kind, w, x_np):
    import tensorflow as tf

    v = {k: tf.Variable(a, name=k) for k, a in w.items()}
    hidden = w["recurrent_kernel"].shape[0]

    def step(carry, xt):
        h, c = carry
        zi, zf, zg, zo = tf.split(xt @ v["kernel"] + h @ v["recurrent_kernel"] + v["bias"], 4, axis=-1)
        if kind == "lstm":
            c = tf.sigmoid(zf) * c + tf.sigmoid(zi) * tf.tanh(zg)
            return tf.sigmoid(zo) * tf.tanh(c), c
        c = tf.sigmoid(zf + v["peephole_f"] * c) * c + tf.sigmoid(zi + v["peephole_i"] * c) * tf.tanh(zg)
        return tf.sigmoid(zo + v["peephole_o"] * c) * tf.tanh(c), c

    def call(x):
        z = tf.zeros((tf.shape(x)[0], hidden), x.dtype)
        hs, _ = tf.scan(step, tf.transpose(x, [1, 0, 2]), initializer=(z, z))
        return tf.transpose(hs, [1, 0, 2])

    return tf_impl(call, list(v.values()), tf.constant(x_np))
