"""RecurrentShop's examples/query_reduction_network.py: the QRN cell (context and query halves of one input,
an update gate z, a reset gate r), run as Bidirectional(merge_mode='sum') and called twice with the same
weights. The bAbI pipeline (Embedding, position encoding) stays outside the recurrent layer."""

from __future__ import annotations

import numpy as np

from rshop_core import Bidirectional, Input, RecurrentModel
from rshop_core import functional as F
from rshop_core import initializers as I
from rshop_core.layers import Dense, add, concatenate, multiply

from .port import agrees, gradients_agree

# the example's hyperparameters at test size (it used batch 50, embedding 50); 2 lines per story: T = 2
batch_size, lines_per_story, embedding_dim = 3, 2, 4


def QRNcell():
    xq = Input((embedding_dim * 2,))  # RecurrentShop: Input(batch_shape=(batch_size, embedding_dim * 2))
    # split into context and query: Lambda(lambda x, dim: x[:, :dim]) and x[:, dim:]
    xt = F.slice(xq, 0, embedding_dim)
    qt = F.slice(xq, embedding_dim, 2 * embedding_dim)

    h_tm1 = Input((embedding_dim,))

    zt = Dense(1, activation="sigmoid", bias_initializer=I.Constant(2.5), name="z")(multiply([xt, qt]))
    ch = Dense(embedding_dim, activation="tanh", name="ch")(concatenate([xt, qt], axis=-1))
    rt = Dense(1, activation="sigmoid", name="r")(multiply([xt, qt]))
    ht = add([multiply([zt, ch, rt]), multiply([1 - zt, h_tm1])])  # Lambda(lambda x: 1 - x)(zt)
    return RecurrentModel(
        input=xq, output=ht, initial_states=[h_tm1], final_states=[ht], return_sequences=True, name="qrn", seed=80
    )


QRN = Bidirectional(QRNcell(), merge_mode="sum")
RNG = np.random.default_rng(80)
M = RNG.standard_normal((batch_size, lines_per_story, embedding_dim))  # the story lines, summed embeddings
Q = np.repeat(RNG.standard_normal((batch_size, 1, embedding_dim)), lines_per_story, axis=1)  # the query
MQ = np.concatenate([M, Q], axis=-1)


def test_qrn_twice_with_shared_weights(engine):
    """`a = QRN(mq)`, `mq = concatenate([m, a])`, `a = QRN(mq)`: one lowered layer called twice."""
    from conformance.conftest import reference, run

    layer = QRN.lower(engine)
    (a,) = agrees(QRN, engine, MQ, "QRN, first call")
    (a_ref,) = reference(QRN, MQ)
    (a2,) = run(QRN, engine, np.concatenate([M, a], axis=-1), layer=layer)
    (a2_ref,) = reference(QRN, np.concatenate([M, a_ref], axis=-1))
    assert a2.shape == (batch_size, lines_per_story, embedding_dim)
    np.testing.assert_allclose(a2, a2_ref, atol=1e-5)
    last = a2[:, lines_per_story - 1, :]  # Lambda(lambda x: x[:, lines_per_story - 1, :])
    assert last.shape == (batch_size, embedding_dim)


def test_qrn_cell_by_hand():
    """The reference against the paper's update h_t = z r tanh(W[x, q]) + (1 - z) h_{t-1}, forwards only."""

    def sigmoid(v):
        return 1 / (1 + np.exp(-v))

    forward = QRN.forward
    w = {k.split("/", 1)[1]: v for k, v in forward.get_weights().items()}  # without the "forward/" prefix
    h, hs = np.zeros((batch_size, embedding_dim)), []
    for t in range(lines_per_story):
        xt, qt = MQ[:, t, :embedding_dim], MQ[:, t, embedding_dim:]
        z = sigmoid(xt * qt @ w["z/kernel"] + w["z/bias"])
        r = sigmoid(xt * qt @ w["r/kernel"] + w["r/bias"])
        c = np.tanh(np.concatenate([xt, qt], -1) @ w["ch/kernel"] + w["ch/bias"])
        h = z * c * r + (1 - z) * h
        hs.append(h)
    np.testing.assert_allclose(forward.lower("numpy", "float64")(MQ), np.stack(hs, 1), atol=1e-12)


def test_qrn_gradients(trainable_engine):
    gradients_agree(QRN, trainable_engine, MQ, "QRN")
