"""RecurrentShop's examples/recurrent_highway_networks.py: the RHN() wrapper around RHNCell (advanced_cells.py),
with its variational-dropout mask carried as a second state. The data pipeline (text8, Embedding, the output
softmax) stays outside the recurrent layer; the port feeds float embeddings."""

from __future__ import annotations

import numpy as np

from rshop_core import Input, RecurrentModel
from rshop_core import initializers as I
from rshop_core.layers import Activation, Dense, add, multiply

from .port import agrees, gradients_agree

# the example's hyperparameters, at test size (it used batch 128, 10 steps, hidden 10, depth 10)
batch_size, timesteps, embedding_dim = 2, 4, 3
hidden_dim, recurrence_depth = 4, 3
weight_decay, gradient_clip, transform_bias = 1e-7, 10, -4.0
weight_init = I.RandomUniform(-0.04, 0.04)


def rhn_cell(x, h_tm1, units, recurrence_depth, dense=Dense):
    """RHNCell.build_model: a highway layer on (x, h), then recurrence_depth - 1 more on h. Its quirks kept:
    the carry gate is sigmoid(1 - t), not 1 - t."""
    kw = dict(bias_initializer=I.Constant(transform_bias))
    w_kw = dict(kernel_initializer=weight_init, kernel_regularizer={"l2": weight_decay}, **kw)
    r_kw = dict(kernel_initializer=weight_init, kernel_regularizer={"l2": weight_decay}, **kw)
    Rh, Rt = dense(units, **r_kw), dense(units, **r_kw)
    Wh, Wt = dense(units, **w_kw), dense(units, **w_kw)
    hl = Activation("tanh")(add([Wh(x), Rh(h_tm1)]))
    tl = Activation("sigmoid")(add([Wt(x), Rt(h_tm1)]))
    cl = Activation("sigmoid")(1.0 - tl)
    ht = add([multiply([hl, tl]), multiply([h_tm1, cl])])
    for _ in range(recurrence_depth - 1):
        hli = dense(units, activation="tanh", **r_kw)(ht)
        tli = dense(units, activation="sigmoid", **r_kw)(ht)
        cli = Activation("sigmoid")(1.0 - tli)
        ht = add([multiply([hli, tli]), multiply([ht, cli])])
    return ht, ht


def RHN(input_dim, hidden_dim, depth, **options):
    inp = Input((input_dim,))  # RecurrentShop: Input(batch_shape=(batch_size, input_dim))
    state = Input((hidden_dim,))
    drop_mask = Input((hidden_dim,))
    inverted_drop_mask = 1.0 - drop_mask  # "to avoid all zero mask causing gradient to vanish"
    drop_mask_2 = inverted_drop_mask + 0.0
    dropped_state = multiply([state, inverted_drop_mask])
    y, new_state = rhn_cell(inp, dropped_state, hidden_dim, depth)
    return RecurrentModel(
        input=inp,
        output=y,
        initial_states=[state, drop_mask],
        final_states=[new_state, drop_mask_2],
        name="rhn",
        seed=70,
        **options,
    )


MODEL = RHN(embedding_dim, hidden_dim, recurrence_depth, return_sequences=True, return_states=True)
RNG = np.random.default_rng(70)
X = RNG.standard_normal((batch_size, timesteps, embedding_dim))
# the example's initial_state=[zero_init, drop_mask]: zeros, and Dropout(hidden_drop) applied to ones
ZERO_INIT = np.zeros((batch_size, hidden_dim))
DROP_MASK = (RNG.random((batch_size, hidden_dim)) > 0.25) / 0.75


def test_rhn(engine):
    y, h, mask = agrees(MODEL, engine, X, "RHN", initial_state=[ZERO_INIT, DROP_MASK])
    assert y.shape == (batch_size, timesteps, hidden_dim) and h.shape == (batch_size, hidden_dim)
    np.testing.assert_allclose(mask, DROP_MASK, atol=1e-6)  # the mask flips at every step: 4 flips


def test_rhn_gradients(trainable_engine):
    gradients_agree(MODEL, trainable_engine, X, "RHN", initial_state=[ZERO_INIT, DROP_MASK])


def test_rhn_regularizer():
    """The example's l2(weight_decay) on every kernel: the layer's regularization_loss is their sum."""
    w = MODEL.get_weights()
    want = weight_decay * sum(float(np.sum(v.astype(np.float64) ** 2)) for k, v in w.items() if k.endswith("kernel"))
    got = float(MODEL.lower("numpy", "float64").regularization_loss())
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_rhn_with_max_norm_constraints():
    """The example's kernel_constraint=max_norm(gradient_clip), as Keras spells it."""
    from rshop_core import constraints

    def constrained(units, **kw):
        return Dense(units, kernel_constraint=constraints.MaxNorm(gradient_clip), **kw)

    inp, h = Input((embedding_dim,)), Input((hidden_dim,))
    y, new = rhn_cell(inp, h, hidden_dim, recurrence_depth, dense=constrained)
    model = RecurrentModel(input=inp, output=y, initial_states=[h], final_states=[new], seed=70)
    big = {k: v * 1e4 if k.endswith("kernel") else v for k, v in model.get_weights().items()}
    model.set_weights(big)
    layer = model.lower("numpy", "float64")
    layer.apply_constraints()
    for name, kernel in layer.get_weights().items():
        if name.endswith("kernel"):  # Keras' max_norm: the norm of each unit's incoming weights (axis 0)
            assert np.all(np.linalg.norm(kernel, axis=0) <= gradient_clip * (1 + 1e-9)), name


def test_rhn_batch_shape_inputs():
    """The example declares its step Inputs with batch_shape=(batch_size, dim)."""
    inp = Input(batch_shape=(batch_size, embedding_dim))
    state = Input(batch_shape=(batch_size, hidden_dim))
    y, new = rhn_cell(inp, state, hidden_dim, recurrence_depth)
    model = RecurrentModel(input=inp, output=y, initial_states=[state], final_states=[new], seed=70)
    assert model.lower("numpy")(X.astype("float32")).shape == (batch_size, hidden_dim)
