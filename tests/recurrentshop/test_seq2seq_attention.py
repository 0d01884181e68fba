"""seq2seq's AttentionSeq2Seq (farizrahman4u/seq2seq, built on RecurrentShop): a bidirectional LSTM encoder
(merge_mode='sum') and a decode=True decoder whose AttentionDecoderCell scores the whole encoded sequence at
every step. Ported with depth=1, the default."""

from __future__ import annotations

import numpy as np

from rshop_core import Bidirectional, Input, RecurrentModel, RecurrentSequential, SequenceStack
from rshop_core import functional as F
from rshop_core.cells import LSTMCell
from rshop_core.layers import Activation, Dense, Dropout, add, concatenate, multiply

from .port import agrees


def attention_decoder(output_dim, hidden_dim, input_length, input_dim, output_length, dropout=0.0, seed=0):
    """AttentionDecoderCell inside `RecurrentSequential(decode=True, output_length=...)`.

    The decoder's input is the whole encoded sequence (input_length, input_dim), seen at every step; a
    RecurrentSequential takes (batch, features) steps, so the step is written as a RecurrentModel."""
    encoded = Input((input_length, input_dim))
    h_tm1 = Input((hidden_dim,))
    c_tm1 = Input((hidden_dim,))
    x = Dropout(dropout)(encoded)

    W1 = Dense(hidden_dim * 4, name="W1")
    W2 = Dense(output_dim, name="W2")
    W3 = Dense(1, name="W3")
    U = Dense(hidden_dim * 4, name="U")

    # K.repeat(c_tm1, input_length): a (1, hidden) row broadcast against zeros (input_length, 1)
    C = F.reshape(c_tm1, (1, hidden_dim)) + F.constant(np.zeros((input_length, 1)))
    _xC = concatenate([x, C])  # (input_length, input_dim + hidden_dim): Dense acts on the last axis
    alpha = W3(_xC)  # (input_length, 1)
    alpha = F.reshape(alpha, (input_length,))
    alpha = Activation("softmax")(alpha)
    _x = F.einsum("t,td->d", alpha, x)  # K.batch_dot(alpha, x, axes=(1, 1))

    z = add([W1(_x), U(h_tm1)])
    z0, z1, z2, z3 = F.split(z, 4)  # get_slices(z, 4)
    i = Activation("hard_sigmoid")(z0)  # ExtendedRNNCell's recurrent_activation
    f = Activation("hard_sigmoid")(z1)
    c = add([multiply([f, c_tm1]), multiply([i, Activation("tanh")(z2)])])
    o = Activation("hard_sigmoid")(z3)
    h = multiply([o, Activation("tanh")(c)])
    y = Activation("tanh")(W2(h))
    return RecurrentModel(
        input=encoded,
        initial_states=[h_tm1, c_tm1],
        output=y,
        final_states=[h, c],
        decode=True,
        output_length=output_length,
        return_sequences=True,  # RecurrentShop forced it for decode=True
        name="attention_decoder",
        seed=seed,
    )


def AttentionSeq2Seq(output_dim, output_length, input_length, input_dim, hidden_dim=None, bidirectional=True):
    """The model function, with `input_length`/`input_dim` for its batch_input_shape (rshop needs no batch)."""
    if hidden_dim is None:
        hidden_dim = output_dim
    encoder = RecurrentSequential(return_sequences=True, name="encoder", seed=60)
    encoder.add(LSTMCell(hidden_dim, input_dim=input_dim))
    if bidirectional:
        encoder = Bidirectional(encoder, merge_mode="sum")
    decoder = attention_decoder(output_dim, hidden_dim, input_length, hidden_dim, output_length, seed=61)
    return SequenceStack([encoder, decoder], name="attention_seq2seq")


MODEL = AttentionSeq2Seq(output_dim=3, output_length=4, input_length=5, input_dim=2, hidden_dim=6)
X = np.random.default_rng(60).standard_normal((2, 5, 2))


def test_attention_seq2seq(engine):
    (y,) = agrees(MODEL, engine, X, "AttentionSeq2Seq")
    assert y.shape == (2, 4, 3)  # (batch, output_length, output_dim)


def hard_sigmoid(z):
    return np.clip(z / 6 + 0.5, 0.0, 1.0)


def test_attention_decoder_by_hand():
    """The reference against the cell's equations in numpy: encoder outputs from the reference, then one
    decoder written out."""
    ref = MODEL.lower("numpy", "float64")
    encoder, decoder = MODEL.layers
    enc = encoder.lower("numpy", "float64")(X)
    w = decoder.get_weights()
    W1, W2, W3, U = ((w[f"{n}/kernel"], w[f"{n}/bias"]) for n in ("W1", "W2", "W3", "U"))
    h = c = np.zeros((2, 6))
    ys = []
    for _ in range(4):
        scores = np.concatenate([enc, np.repeat(c[:, None], 5, axis=1)], -1) @ W3[0] + W3[1]
        alpha = np.exp(scores[..., 0] - scores[..., 0].max(-1, keepdims=True))
        alpha /= alpha.sum(-1, keepdims=True)
        context = np.einsum("bt,btd->bd", alpha, enc)
        z = context @ W1[0] + W1[1] + h @ U[0] + U[1]
        z0, z1, z2, z3 = np.split(z, 4, -1)
        c = hard_sigmoid(z1) * c + hard_sigmoid(z0) * np.tanh(z2)
        h = hard_sigmoid(z3) * np.tanh(c)
        ys.append(np.tanh(h @ W2[0] + W2[1]))
    np.testing.assert_allclose(ref(X), np.stack(ys, 1), atol=1e-12)
