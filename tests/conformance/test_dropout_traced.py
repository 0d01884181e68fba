"""Dropout under tracing: a traced training call draws fresh masks per call or is refused, never frozen.

The model's output IS its dropout mask (``Dropout(0.5)`` of an all-ones x, returned at every
step), so each test reads the masks a call used. Eager calls draw numpy masks (the same on
every engine: tests/conformance/test_composition_semantics.py). Here: jax under ``jax.jit``
(``dropout_key=`` required, masks from ``jax.random``) and tensorflow inside a user
``tf.function`` (masks drawn in the graph from the layer's ``tf.random.Generator``). The torch
engine's traced cases live in their own file.
"""

from __future__ import annotations

import numpy as np
import pytest

from rshop_core import Input, RecurrentModel
from rshop_core.cells import LSTMCell
from rshop_core.errors import RshopConfigError
from rshop_core.layers import Dropout

from .conftest import only_engine, reference

B, T, D, RATE = 4, 6, 8, 0.5
ONES = np.ones((B, T, D), np.float32)


def mask_model(seed=4):
    """y_t = Dropout(0.5)(x_t), h passed through: with x = 1 the outputs are the masks (0 or 2)."""
    x, h = Input((D,), name="x"), Input((D,), name="h")
    return RecurrentModel(
        input=x, initial_states=[h], output=Dropout(RATE)(x), final_states=[h], return_sequences=True, seed=seed
    )


def assert_one_mask_per_sequence(y):
    """Masks of a dropout rate 0.5: values 0 or 2, one per sequence (every step the same), not all kept."""
    y = np.asarray(y)
    assert y.shape == (B, T, D)
    assert set(np.unique(y)) <= {0.0, 2.0}
    assert np.array_equal(y, np.broadcast_to(y[:, :1], y.shape)), "a new mask at some step: not variational"
    assert 0 < (y == 0).sum() < y.size


def _engine(request, name):
    return only_engine(request, name, "drawing dropout masks under its tracing")


# -- jax -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def jax_layer(request):
    _engine(request, "jax")
    return mask_model().lower("jax")


def test_jax_jit_without_key_is_refused(jax_layer):
    import jax

    f = jax.jit(lambda p, x: jax_layer.apply(p, x, training=True))
    with pytest.raises(RshopConfigError) as e:
        f(jax_layer.params, jax.numpy.asarray(ONES))
    msg = str(e.value)
    assert msg.startswith(
        "jax layer of RecurrentModel 'recurrent_model', argument dropout_key: expected a jax PRNG "
        "key for a training call with dropout under jax.jit"
    )
    assert "received None" in msg and "dropout_key=jax.random.key(seed)" in msg and "jax.random.split" in msg


def test_jax_vmap_without_key_is_refused(jax_layer):
    import jax

    f = jax.vmap(lambda x: jax_layer.apply(jax_layer.params, x, training=True))
    with pytest.raises(RshopConfigError, match="argument dropout_key: expected a jax PRNG key"):
        f(jax.numpy.asarray(ONES[None]))


def test_jax_jit_with_key_draws_per_key(jax_layer):
    import jax

    f = jax.jit(lambda p, x, k: jax_layer.apply(p, x, training=True, dropout_key=k))
    x = jax.numpy.asarray(ONES)
    a = np.asarray(f(jax_layer.params, x, jax.random.key(0)))
    b = np.asarray(f(jax_layer.params, x, jax.random.key(1)))
    a2 = np.asarray(f(jax_layer.params, x, jax.random.key(0)))
    for y in (a, b):
        assert_one_mask_per_sequence(y)
    assert not np.array_equal(a, b), "two keys, one mask: the mask is frozen into the trace"
    assert np.array_equal(a, a2), "the same key must give the same mask"
    assert f._cache_size() == 1  # one compiled function served all three calls: masks are not constants


def test_jax_eager_and_inference_need_no_key(jax_layer):
    import jax

    x = jax.numpy.asarray(ONES)
    a, b = np.asarray(jax_layer(x, training=True)), np.asarray(jax_layer(x, training=True))
    assert_one_mask_per_sequence(a)
    assert not np.array_equal(a, b)  # eager calls: numpy draws fresh masks per call
    jax_layer.reseed(3)
    got = np.asarray(jax_layer(x, training=True))
    numpy_layer = mask_model().lower("numpy")
    numpy_layer.reseed(3)
    assert np.array_equal(got, numpy_layer(ONES, training=True))  # the same masks as every engine
    infer = jax.jit(lambda p, x: jax_layer.apply(p, x))(jax_layer.params, x)  # no masks: no key needed
    assert np.array_equal(np.asarray(infer), reference(mask_model(), ONES)[0])


def test_jax_grad_of_jit_with_key_uses_the_mask(jax_layer):
    """A jitted training step: the gradient w.r.t. x is the mask of the key (d(x * m)/dx = m)."""
    import jax

    def loss(x, k):
        return jax.numpy.sum(jax_layer.apply(jax_layer.params, x, training=True, dropout_key=k))

    k = jax.random.key(5)
    g = np.asarray(jax.jit(jax.grad(loss))(jax.numpy.asarray(ONES), k))
    y = np.asarray(
        jax.jit(lambda x, k: jax_layer.apply(jax_layer.params, x, training=True, dropout_key=k))(
            jax.numpy.asarray(ONES), k
        )
    )
    assert np.array_equal(g, y)


# -- tensorflow ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tf_layer(request):
    _engine(request, "tensorflow")
    return mask_model().lower("tensorflow")


def test_tf_function_draws_fresh_masks(tf_layer):
    import tensorflow as tf

    f = tf.function(lambda x: tf_layer(x, training=True))
    x = tf.constant(ONES)
    a, b = f(x).numpy(), f(x).numpy()
    for y in (a, b):
        assert_one_mask_per_sequence(y)
    assert not np.array_equal(a, b), "one trace, one mask: the mask is frozen into the graph"
    assert f.experimental_get_tracing_count() == 1


def test_tf_function_dynamic_batch(tf_layer):
    """Masks drawn in the graph for a batch known only at run time."""
    import tensorflow as tf

    f = tf.function(lambda x: tf_layer(x, training=True), input_signature=[tf.TensorSpec([None, None, D])])
    assert_one_mask_per_sequence(f(tf.constant(ONES)).numpy())
    assert f(tf.ones((2, 3, D))).numpy().shape == (2, 3, D)


def test_tf_reseed_restarts_graph_masks(tf_layer):
    import tensorflow as tf

    f = tf.function(lambda x: tf_layer(x, training=True))
    x = tf.constant(ONES)
    tf_layer.reseed(7)
    a = f(x).numpy()
    tf_layer.reseed(7)
    assert np.array_equal(a, f(x).numpy())


def test_tf_eager_masks_and_inference_unchanged(tf_layer):
    import tensorflow as tf

    x = tf.constant(ONES)
    tf_layer.reseed(3)
    eager = tf_layer(x, training=True).numpy()
    numpy_layer = mask_model().lower("numpy")
    numpy_layer.reseed(3)
    assert np.array_equal(eager, numpy_layer(ONES, training=True))  # eager: numpy's masks, as everywhere
    f = tf.function(lambda x: tf_layer(x, training=False))
    assert np.array_equal(f(x).numpy(), f(x).numpy())
    assert np.array_equal(f(x).numpy(), ONES)  # inference: no dropout


def test_tf_function_lstm_dropout_matches_its_mask(request):
    """An LSTM with input dropout inside a tf.function equals the LSTM formula in float64 numpy with
    the mask the graph drew (replayed from the layer's generator after the same reseed): one mask
    per sequence, applied to x at every step."""
    _engine(request, "tensorflow")
    import tensorflow as tf

    lstm = LSTMCell(3, input_dim=D, dropout=RATE).get_layer(seed=2, return_sequences=True)
    layer = lstm.lower("tensorflow", "float64")
    x = np.random.default_rng(0).standard_normal((B, T, D))
    f = tf.function(lambda x: layer(x, training=True))
    ys = [f(tf.constant(x)).numpy() for _ in range(2)]
    assert np.abs(ys[0] - ys[1]).max() > 1e-3  # fresh masks per call
    layer.reseed(11)
    y = f(tf.constant(x)).numpy()
    layer.reseed(11)
    gen = layer._dropout_generator
    mask = (gen.uniform((B, D), dtype=tf.float32).numpy() >= RATE) / (1 - RATE)
    w = {k.split("/")[-1]: v for k, v in layer.get_weights().items()}
    sig = lambda v: 1 / (1 + np.exp(-v))
    h, c, want = np.zeros((B, 3)), np.zeros((B, 3)), []
    for t in range(T):
        z = (x[:, t] * mask) @ w["kernel"] + h @ w["recurrent_kernel"] + w["bias"]
        c = sig(z[:, 3:6]) * c + sig(z[:, :3]) * np.tanh(z[:, 6:9])
        h = sig(z[:, 9:]) * np.tanh(c)
        want.append(h)
    assert np.abs(y - np.stack(want, 1)).max() <= 1e-9


def test_tf_checkpoint_carries_the_generator(tf_layer, tmp_path):
    """The generator is tracked by the tf.Module: restoring a checkpoint replays the same graph masks."""
    import tensorflow as tf

    f = tf.function(lambda x: tf_layer(x, training=True))
    x = tf.constant(ONES)
    ckpt = tf.train.Checkpoint(layer=tf_layer)
    path = ckpt.write(str(tmp_path / "ckpt"))
    a = f(x).numpy()
    ckpt.read(path).assert_consumed()
    assert np.array_equal(a, f(x).numpy())
    assert [v.name for v in tf_layer.variables] == []  # the mask model has no parameters; the RNG state is no weight
