"""The combinations real models use, trained end to end: an encoder feeding an attention decoder
(constants = the encoder's outputs, initial states = its final states, readout + teacher forcing).
Gradients w.r.t. BOTH models' parameters on every trainable engine equal float64 finite differences."""

from __future__ import annotations

import numpy as np

from rshop_core import Input, RecurrentModel
from rshop_core import functional as F
from rshop_core.cells import LSTMCell
from rshop_core.layers import Dense

from .conftest import central_differences, harness, native
from .tolerances import GRAD_RTOL


def encoder():
    return LSTMCell(6, input_dim=4).get_layer(seed=51, return_sequences=True, return_states=True)


def attention_decoder():
    x, h, c, y_tm1 = Input((3,), name="x"), Input((6,), name="h"), Input((6,), name="c"), Input((3,), name="y")
    enc = Input((None, 6), name="encoder_outputs")
    scores = F.einsum("td,d->t", enc, Dense(6, use_bias=False, name="query")(h))
    weights = F.softmax(scores)
    context = F.einsum("t,td->d", weights, enc)
    h_new, (h2, c2) = LSTMCell(6, name="dec_lstm")(F.concat([x, context, y_tm1]), [h, c])
    y = Dense(3, name="out")(h_new)
    return RecurrentModel(
        input=x,
        initial_states=[h, c],
        output=[y, weights],
        final_states=[h2, c2],
        constants=[enc],
        readout_input=y_tm1,
        teacher_force=True,
        return_sequences=True,
        seed=52,
    )


rng = np.random.default_rng(9)
SRC, DEC_X, GT = rng.standard_normal((2, 5, 4)), rng.standard_normal((2, 4, 3)), rng.standard_normal((2, 4, 3))
W = rng.standard_normal((2, 4, 3))


def numpy_loss(enc_layer, dec_layer):
    seq, h, c = enc_layer(SRC)
    y, _ = dec_layer(DEC_X, initial_state=[h, c], constants=[seq], ground_truth=GT, training=True)
    return float(np.sum(y * W))


def test_shapes_and_attention_weights(engine):
    h = harness(engine)
    seq, hh, cc = encoder().lower(engine)(native(h, SRC, "float32"), training=False)
    y, att = attention_decoder().lower(engine)(
        native(h, DEC_X, "float32"), initial_state=[hh, cc], constants=[seq], training=False
    )
    y, att = h.to_numpy(y), h.to_numpy(att)
    assert y.shape == (2, 4, 3) and att.shape == (2, 4, 5)
    np.testing.assert_allclose(att.sum(-1), 1.0, atol=1e-5)  # one distribution over encoder steps per step


def engine_grads(engine, enc, dec):
    h = harness(engine)
    src, dx, gt, w = (native(h, a, "float32") for a in (SRC, DEC_X, GT, W))
    if engine == "jax":
        import jax
        import jax.numpy as jnp

        def loss(pe, pd):
            seq, hh, cc = enc.apply(pe, src)
            y, _ = dec.apply(pd, dx, initial_state=[hh, cc], constants=[seq], ground_truth=gt, training=True)
            return jnp.sum(y * w)

        ge, gd = jax.grad(loss, argnums=(0, 1))(enc.params, dec.params)
        return {k: np.asarray(v) for k, v in ge.items()}, {k: np.asarray(v) for k, v in gd.items()}
    if engine == "torch":
        seq, hh, cc = enc(src)
        y, _ = dec(dx, initial_state=[hh, cc], constants=[seq], ground_truth=gt, training=True)
        (y * w).sum().backward()
        return (
            {k: p.grad.numpy() for k, p in enc.named_parameters()},
            {k: p.grad.numpy() for k, p in dec.named_parameters()},
        )
    import tensorflow as tf

    with tf.GradientTape() as tape:
        seq, hh, cc = enc(src)
        y, _ = dec(dx, initial_state=[hh, cc], constants=[seq], ground_truth=gt, training=True)
        loss = tf.reduce_sum(y * w)
    ve, vd = enc.variables_by_name, dec.variables_by_name
    grads = tape.gradient(loss, [list(ve.values()), list(vd.values())])
    return ({k: np.asarray(g) for k, g in zip(ve, grads[0])}, {k: np.asarray(g) for k, g in zip(vd, grads[1])})


def test_gradients_flow_through_encoder_and_decoder(trainable_engine):
    e_model, d_model = encoder(), attention_decoder()
    e64, d64 = e_model.lower("numpy", "float64"), d_model.lower("numpy", "float64")
    got_e, got_d = engine_grads(trainable_engine, e_model.lower(trainable_engine), d_model.lower(trainable_engine))
    for got, layer in ((got_e, e64), (got_d, d64)):
        assert sorted(got) == sorted(layer.params)
        want = central_differences(layer.params, lambda: numpy_loss(e64, d64))
        for name, fd in want.items():
            err = float(np.max(np.abs(got[name] - fd)))
            assert np.abs(got[name]).max() > 0, f"no gradient reached {name}"
            assert err <= GRAD_RTOL["float32"] * max(1.0, float(np.abs(fd).max())), f"{name}: {err:.3g}"
