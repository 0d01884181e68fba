"""The tensorflow engine inside a user's ``tf.function`` and as a SavedModel.

- RshopErrors raised while TensorFlow traces the user's function keep their type and message
  (autograph would re-raise them as ``StagingError``).
- Shapes only partly known at trace time: compatible dims are accepted (a dynamic batch with a
  static-batch mask), an unknown rank is refused by name, and what is unknown until run time
  (an empty batch or sequence, a feature size of ``None``) is checked by graph assertions whose
  ``InvalidArgumentError`` carries the rshop message.
- ``tf.saved_model.save`` of a called layer works, and the serving signature reloaded in a
  fresh process reproduces the layer's outputs at other batch sizes and lengths.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from rshop_core import Input, RecurrentModel
from rshop_core.cells import GRUCell, LSTMCell
from rshop_core.errors import RshopConfigError, RshopShapeError
from rshop_core.layers import Activation, Dense, add

from .conftest import only_engine

D = 3
X = np.random.default_rng(0).standard_normal((4, 5, D)).astype(np.float32)


@pytest.fixture(scope="module")
def tf(request):
    only_engine(request, "tensorflow", "tracing and SavedModel export")
    import tensorflow

    return tensorflow


@pytest.fixture(scope="module")
def layer(tf):
    return LSTMCell(4, input_dim=D).get_layer(seed=1, return_sequences=True).lower("tensorflow")


def eager_error(layer, *args, **kwargs):
    with pytest.raises(Exception) as e:
        layer(*args, **kwargs)
    return e.value


# -- errors keep their type ------------------------------------------------------------------
@pytest.mark.parametrize("autograph", [True, False], ids=["autograph", "no_autograph"])
def test_errors_keep_type_and_message_in_tf_function(tf, layer, autograph):
    bad = tf.constant(np.ones((4, 5, D + 1), np.float32))
    want = eager_error(layer, bad)
    assert type(want) is RshopShapeError
    f = tf.function(lambda x: layer(x), autograph=autograph)
    with pytest.raises(RshopShapeError) as got:
        f(bad)
    assert str(got.value) == str(want)
    g = tf.function(lambda x: layer(x, constants=[x]), autograph=autograph)
    with pytest.raises(RshopConfigError, match=r"argument constants: expected 0 constant\(s\), received 1"):
        g(tf.constant(X))


def test_static_feature_size_checked_at_trace_time(tf, layer):
    f = tf.function(lambda x: layer(x))
    with pytest.raises(
        RshopShapeError,
        match=r"argument x: expected an array of shape \(batch, time, 3\) \(rank 3\), "
        r"received shape \(None, None, 5\) \(rank 3\)\.",
    ):
        f.get_concrete_function(tf.TensorSpec([None, None, 5]))


def test_unknown_rank_refused_by_name(tf, layer):
    f = tf.function(lambda x: layer(x))
    with pytest.raises(RshopShapeError) as e:
        f.get_concrete_function(tf.TensorSpec(None))
    assert str(e.value) == (
        "RecurrentModel 'lstm', argument x: expected an array of shape (batch, time, 3) (rank 3), "
        "received an array of unknown rank. Give it a known rank (in a tf.function, an "
        "input_signature TensorSpec with a shape)."
    )
    g = tf.function(lambda x, m: layer(x, mask=m))
    with pytest.raises(
        RshopShapeError,
        match=r"argument mask: expected a bool array of shape \(None, None\), "
        r"received an array of unknown rank",
    ):
        g.get_concrete_function(tf.TensorSpec([None, None, D]), tf.TensorSpec(None, tf.bool))


# -- dynamic and static dims together ----------------------------------------------------------
def test_dynamic_batch_with_static_mask_and_state(tf, layer):
    mask = np.ones((4, 5), bool)
    mask[1, 3:] = False
    h0 = np.random.default_rng(1).standard_normal((4, 4)).astype(np.float32)
    eager = layer(tf.constant(X), initial_state=[tf.constant(h0), tf.zeros((4, 4))], mask=tf.constant(mask)).numpy()
    f = tf.function(
        lambda x, m, h: layer(x, initial_state=[h, tf.zeros((4, 4))], mask=m),
        input_signature=[tf.TensorSpec([None, None, D]), tf.TensorSpec([4, None], tf.bool), tf.TensorSpec([4, 4])],
    )
    np.testing.assert_allclose(f(tf.constant(X), tf.constant(mask), tf.constant(h0)).numpy(), eager, atol=1e-6)
    lengths = tf.function(
        lambda x, n: layer(x, sequence_lengths=n),
        input_signature=[tf.TensorSpec([None, None, D]), tf.TensorSpec([4], tf.int32)],
    )
    n = tf.constant([5, 3, 5, 5])
    np.testing.assert_allclose(
        lengths(tf.constant(X), n).numpy(), layer(tf.constant(X), sequence_lengths=n).numpy(), atol=1e-6
    )
    g = tf.function(lambda x, m: layer(x, mask=m))
    with pytest.raises(
        RshopShapeError,
        match=r"argument mask: expected a bool array of shape \(4, None\), "
        r"received shape \(3, None\)",
    ):
        g.get_concrete_function(tf.TensorSpec([4, None, D]), tf.TensorSpec([3, None], tf.bool))


@pytest.mark.parametrize(
    "shape, message",
    [
        (
            (4, 0, D),
            "RecurrentModel 'lstm', argument x: expected at least one time step, received shape (None, 0, None). "
            "An empty sequence has no output.",
        ),
        (
            (0, 5, D),
            "RecurrentModel 'lstm', argument x: expected a batch of at least one, received shape (0, None, None).",
        ),
        (
            (4, 5, D + 2),
            "RecurrentModel 'lstm', argument x: expected an array of shape (batch, time, 3) (rank 3), "
            "received shape (None, None, None) (rank 3).",
        ),
    ],
    ids=["empty_time", "empty_batch", "wrong_features"],
)
def test_dims_unknown_until_run_time_are_asserted(tf, layer, shape, message):
    f = tf.function(lambda x: layer(x), input_signature=[tf.TensorSpec([None, None, None])])
    np.testing.assert_allclose(f(tf.constant(X)).numpy(), layer(tf.constant(X)).numpy(), atol=1e-6)
    with pytest.raises(tf.errors.InvalidArgumentError) as e:
        f(tf.zeros(shape))
    assert message in e.value.message.replace("\\'", "'")  # TF escapes quotes when printing the message


def test_decode_dynamic_batch_asserted(tf):
    x, s = Input((D,)), Input((4,))
    s_new = Dense(4, activation="tanh")(add([Dense(4)(x), s]))
    dec = RecurrentModel(
        input=x,
        initial_states=[s],
        output=s_new,
        final_states=[s_new],
        decode=True,
        output_length=3,
        return_sequences=True,
        seed=0,
    ).lower("tensorflow")
    f = tf.function(lambda x: dec(x), input_signature=[tf.TensorSpec([None, D])])
    np.testing.assert_allclose(f(tf.constant(X[:, 0])).numpy(), dec(tf.constant(X[:, 0])).numpy(), atol=1e-6)
    with pytest.raises(tf.errors.InvalidArgumentError, match="expected a batch of at least one"):
        f(tf.zeros((0, D)))


# -- SavedModel --------------------------------------------------------------------------------
def custom_cell():
    x_t, h_tm1 = Input((D,)), Input((6,))
    h_t = Activation("tanh")(add([Dense(6)(x_t), Dense(6, use_bias=False)(h_tm1)]))
    return RecurrentModel(
        input=x_t, initial_states=[h_tm1], output=h_t, final_states=[h_t], seed=3, return_sequences=True, name="custom"
    )


SAVED = {
    "lstm": lambda: LSTMCell(4, input_dim=D).get_layer(seed=1, return_sequences=True),
    "gru_states": lambda: GRUCell(5, input_dim=D).get_layer(seed=2, return_states=True, go_backwards=True),
    "custom": custom_cell,
}
SHAPES = [(2, 7), (5, 3)]  # (batch, T): neither is the shape of the first call


LOADER = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    out = {}
    for name, path in json.loads(sys.argv[1]).items():
        loaded = tf.saved_model.load(path)
        serve = loaded.signatures["serving_default"]
        for i, x in enumerate(np.load(sys.argv[2] + "/x.npz").values()):
            res = serve(x=tf.constant(x))
            for k, v in res.items():
                out[f"{name}/{i}/{k}"] = v.numpy()
        if hasattr(loaded, "serve"):  # a user-written tf.function attached to the layer before saving
            out[f"{name}/attached"] = loaded.serve(tf.constant(np.load(sys.argv[2] + "/x.npz")["0"])).numpy()
    np.savez(sys.argv[2] + "/got.npz", **out)
""")


def test_saved_model_reloads_in_a_fresh_process(tf, tmp_path):
    xs = [np.random.default_rng(b).standard_normal((b, t, D)).astype(np.float32) for b, t in SHAPES]
    np.savez(tmp_path / "x.npz", **{str(i): x for i, x in enumerate(xs)})
    paths, want = {}, {}
    for name, build in SAVED.items():
        layer = build().lower("tensorflow")
        layer(tf.constant(X))  # a called layer: its caches hold tf.functions keyed by tuples
        tf.saved_model.save(layer, str(tmp_path / f"plain_{name}"))  # plain save of the module: no crash
        if name == "lstm":  # a user-written wrapper, attached and used as the signature
            layer.serve = tf.function(layer.__call__, input_signature=[tf.TensorSpec([None, None, D])])
            signatures = layer.serve
            want[f"{name}/attached"] = layer(tf.constant(xs[0])).numpy()
        else:
            signatures = layer.serving_signature()
        paths[name] = str(tmp_path / name)
        tf.saved_model.save(layer, paths[name], signatures=signatures)
        for i, x in enumerate(xs):
            out = layer(tf.constant(x))
            out = out if isinstance(out, tuple) else (out,)
            for j, y in enumerate(out):
                want[f"{name}/{i}/output_{j}"] = y.numpy()
    proc = subprocess.run(
        [sys.executable, "-c", LOADER, json.dumps(paths), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        env={"TF_CPP_MIN_LOG_LEVEL": "2", "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = dict(np.load(tmp_path / "got.npz"))
    assert sorted(got) == sorted(want)
    for k in want:
        assert got[k].shape == want[k].shape, k
        assert np.abs(got[k] - want[k]).max() <= 1e-6, k


def test_serving_signature_specs(tf):
    sig = SAVED["lstm"]().lower("tensorflow").serving_signature()
    assert [tuple(s.shape.as_list()) for s in sig.input_signature] == [(None, None, D)]
    x, s = Input((D,)), Input((4,))
    y = Dense(4)(add([Dense(4)(x), s]))
    dec = RecurrentModel(input=x, initial_states=[s], output=y, final_states=[y], decode=True, seed=0)
    with pytest.raises(RshopConfigError, match="serving_signature argument output_length: expected the number of"):
        dec.lower("tensorflow").serving_signature()
    spec = dec.lower("tensorflow").serving_signature(output_length=4).input_signature
    assert [tuple(s.shape.as_list()) for s in spec] == [(None, D)]
