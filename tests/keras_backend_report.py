"""Run by tests/test_keras_integration.py once per Keras backend, in a fresh process with ``KERAS_BACKEND`` set.

Keras fixes its backend at import, so every check of RecurrentLayer on one backend runs here, in this
process, and the results are printed as one JSON line ``REPORT {...}`` that the tests read and assert on.
Run it by hand the same way: ``KERAS_BACKEND=torch PYTHONPATH=src python tests/keras_backend_report.py``.
"""

from __future__ import annotations

import json
import os
import tempfile

import keras
import numpy as np

from rshop_backends.keras import RecurrentLayer
from rshop_core import Bidirectional, Input, RecurrentModel
from rshop_core import functional as F
from rshop_core.cells import GRUCell, IndRNNCell, LSTMCell, MinGRUCell
from rshop_core.errors import RshopDTypeError
from rshop_core.layers import Activation, Dense, Embedding, add

np_ = keras.ops.convert_to_numpy


def listed(v):
    return [np.asarray(np_(a)) for a in (v if isinstance(v, (list, tuple)) else [v])]


def diff(got, ref):
    return max(float(np.abs(a - b).max()) for a, b in zip(listed(got), listed(ref)))


def readme(**options):
    x_t = Input(shape=(5,))
    h_tm1 = Input(shape=(10,))
    h_t = Activation("tanh")(add([Dense(10)(x_t), Dense(10, use_bias=False)(h_tm1)]))
    return RecurrentModel(input=x_t, initial_states=[h_tm1], output=h_t, final_states=[h_t], seed=0, **options)


def main():
    report = {"backend": keras.backend.backend()}
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 7, 5)).astype("float32")
    models = {
        "readme": readme(return_sequences=True),
        "lstm_states": LSTMCell(6, input_dim=5).get_layer(return_sequences=True, return_states=True, seed=1),
        "bidirectional": Bidirectional(GRUCell(3, input_dim=5).get_layer(seed=2, return_sequences=True)),
        "min_gru_scan": MinGRUCell(6, input_dim=5).get_layer(seed=4, return_sequences=True, time_parallel="scan"),
        "indrnn_newton": IndRNNCell(6, input_dim=5, activation="tanh").get_layer(
            seed=5, return_sequences=True, time_parallel="newton"
        ),
    }
    # 1. outputs equal the numpy float64 reference, eagerly and inside a keras.Model
    parity = {}
    for name, m in models.items():
        ref = m.lower("numpy", "float64")(x.astype("float64"))
        inp = keras.Input((None, 5))
        layer = RecurrentLayer(m)
        km = keras.Model(inp, layer(inp))
        parity[name] = {"eager": diff(layer(x), ref), "predict": diff(km.predict(x, verbose=0), ref)}
    report["parity"] = parity

    # 2. Model.fit reduces the loss and changes the rshop weights (dropout inside the step: keras.random masks)
    keras.utils.set_random_seed(0)
    m = LSTMCell(8, input_dim=5, dropout=0.1).get_layer(return_sequences=True, seed=3)
    layer = RecurrentLayer(m)
    inp = keras.Input((7, 5))
    km = keras.Model(inp, keras.layers.Dense(1)(layer(inp)))
    km.compile(keras.optimizers.Adam(0.02), "mse")
    target = np.cumsum(x[..., :1], axis=1).astype("float32") * 0.3
    before_w = layer.get_rshop_weights()
    before = float(km.evaluate(x, target, verbose=0))
    km.fit(x, target, epochs=15, batch_size=3, verbose=0)  # 4 samples: a ragged last batch, a retrace
    after = float(km.evaluate(x, target, verbose=0))
    after_w = layer.get_rshop_weights()
    report["fit"] = {
        "before": before,
        "after": after,
        "names": sorted(after_w),
        "changed": min(float(np.abs(after_w[k] - before_w[k]).max()) for k in after_w),
    }
    # 2b. the same through a time-parallel loop (a scan whose T is unknown while Keras traces)
    m = MinGRUCell(8, input_dim=5).get_layer(return_sequences=True, seed=6, time_parallel="scan")
    scan_layer = RecurrentLayer(m)
    inp = keras.Input((None, 5))
    km = keras.Model(inp, keras.layers.Dense(1)(scan_layer(inp)))
    km.compile(keras.optimizers.Adam(0.02), "mse")
    before = float(km.evaluate(x, target, verbose=0))
    km.fit(x, target, epochs=15, batch_size=3, verbose=0)
    report["fit_parallel"] = {"before": before, "after": float(km.evaluate(x, target, verbose=0))}
    a, b = layer(x, training=True), layer(x, training=True)
    report["dropout"] = {"training_calls_differ": diff(a, b) > 0, "inference_equal": diff(layer(x), layer(x)) == 0}

    # 3. a Keras mask (Masking; Embedding(mask_zero=True)) reaches rshop as mask=
    m = readme(return_sequences=True, return_states=True)
    xm = x.copy()
    xm[1, 4:] = 0.0
    xm[2, 2:] = 0.0
    mask = np.ones((4, 7), bool)
    mask[1, 4:] = False
    mask[2, 2:] = False
    ref = m.lower("numpy", "float64")(xm.astype("float64"), mask=mask)
    inp = keras.Input((7, 5))
    layer = RecurrentLayer(m)
    km = keras.Model(inp, layer(keras.layers.Masking()(inp)))
    report["masking"] = diff(km.predict(xm, verbose=0), ref)
    report["compute_mask_is_input_mask"] = bool(
        np.array_equal(
            np_(layer.compute_mask(keras.ops.convert_to_tensor(xm), keras.ops.convert_to_tensor(mask))[0]), mask
        )
    )
    tokens = np.array([[3, 1, 4, 0, 0], [2, 7, 1, 8, 2]], "int32")
    emb = keras.layers.Embedding(10, 5, mask_zero=True)
    inp = keras.Input((5,), dtype="int32")
    layer = RecurrentLayer(readme(return_sequences=True))
    km = keras.Model(inp, layer(emb(inp)))
    got = km.predict(tokens, verbose=0)
    table = np_(emb.embeddings).astype("float64")
    report["embedding_mask"] = diff(
        got, readme(return_sequences=True).lower("numpy", "float64")(table[tokens], mask=tokens != 0)
    )

    # 4. initial_state as a Keras input of the functional model
    m = readme(return_states=True)
    h0 = rng.standard_normal((4, 10)).astype("float32")
    inp, state = keras.Input((None, 5)), keras.Input((10,))
    km = keras.Model([inp, state], RecurrentLayer(m)(inp, initial_state=[state]))
    ref = m.lower("numpy", "float64")(x.astype("float64"), initial_state=[h0.astype("float64")])
    report["initial_state"] = diff(km.predict([x, h0], verbose=0), ref)

    # 5. get_config (plain JSON) / from_config, and .keras save / load in safe mode
    m = LSTMCell(4, input_dim=5).get_layer(return_sequences=True, seed=4)
    inp = keras.Input((None, 5))
    layer = RecurrentLayer(m, name="rnn")
    km = keras.Model(inp, keras.layers.Dense(2)(layer(inp)))
    layer.set_rshop_weights({k: v + 0.05 for k, v in layer.get_rshop_weights().items()})
    want = km.predict(x, verbose=0)
    config = json.loads(json.dumps(layer.get_config()))
    clone = RecurrentLayer.from_config(config)
    clone.build((None, None, 5))
    clone.set_weights(layer.get_weights())
    report["config"] = diff(clone(x), layer(x))
    path = os.path.join(tempfile.mkdtemp(), "model.keras")
    km.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    report["saved"] = diff(loaded.predict(x, verbose=0), want)
    report["saved_class"] = type(loaded.get_layer("rnn")).__name__

    # 6. teacher forcing: a ground-truth Keras input teacher-forces in training calls; predict runs free
    xt, ht, yt = Input((5,), name="x"), Input((4,), name="h"), Input((2,), name="y_tm1")
    h_new = Dense(4, activation="tanh", name="core")(F.concat([xt, ht, yt]))
    m = RecurrentModel(
        input=xt,
        initial_states=[ht],
        output=Dense(2, name="out")(h_new),
        final_states=[h_new],
        readout_input=yt,
        teacher_force=True,
        return_sequences=True,
        seed=5,
    )
    gt = rng.standard_normal((4, 7, 2)).astype("float32")
    inp, truth = keras.Input((7, 5)), keras.Input((7, 2))
    layer = RecurrentLayer(m)
    km = keras.Model([inp, truth], layer(inp, ground_truth=truth))
    ref = m.lower("numpy", "float64")
    report["teacher"] = {
        "predict_runs_free": diff(km.predict([x, gt], verbose=0), ref(x.astype("float64"))),
        "training_forces": diff(
            layer(x, ground_truth=gt, training=True),
            ref(x.astype("float64"), ground_truth=gt.astype("float64"), training=True),
        ),
    }
    report["bool_constant"] = bool_constant()
    report["int_x"] = int_x()
    print("REPORT " + json.dumps(report))


def bool_constant():
    """A padding mask as a bool keras.Input passed as an rshop constant: predict and a .keras round trip."""
    enc, pad = Input((None, 4), name="encoder"), Input((None,), "bool", name="pad")
    h, x_t = Input((4,), name="h"), Input((3,), name="x")
    scores = F.where(pad, F.einsum("td,d->t", enc, Dense(4)(h)), -1e9)
    h_new = F.tanh(Dense(4)(x_t) + F.einsum("t,td->d", F.softmax(scores), enc))
    m = RecurrentModel(input=x_t, initial_states=[h], output=h_new, final_states=[h_new], constants=[enc, pad], seed=0)
    rng = np.random.default_rng(0)
    x, e = rng.standard_normal((2, 3, 3)).astype("float32"), rng.standard_normal((2, 5, 4)).astype("float32")
    mask = np.ones((2, 5), bool)
    mask[0, 3:] = False
    want = m.lower("numpy", "float64")(x.astype("float64"), constants=[e.astype("float64"), mask])
    xi, ei, pi = keras.Input((None, 3)), keras.Input((None, 4)), keras.Input((None,), dtype="bool")
    km = keras.Model([xi, ei, pi], RecurrentLayer(m)(xi, constants=[ei, pi]))
    path = os.path.join(tempfile.mkdtemp(), "masked.keras")
    km.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    return {
        "predict": diff(km.predict([x, e, mask], verbose=0), want),
        "loaded": diff(loaded.predict([x, e, mask], verbose=0), want),
    }


def int_x():
    """Token ids (batch, T) from an int32 keras.Input as the scanned x: predict, a masked call, fit (the
    embedding table trains), a .keras round trip, and the dtype error for float ids."""
    ids, h = Input((), "int32", name="ids"), Input((4,), name="h")
    e = Embedding(6, 3, embeddings_initializer="glorot_uniform", name="emb")(ids)
    h_new = F.tanh(Dense(4, name="w")(e) + Dense(4, use_bias=False, name="u")(h))
    m = RecurrentModel(
        input=ids,
        initial_states=[h],
        output=Dense(6, name="out")(h_new),
        final_states=[h_new],
        return_sequences=True,
        seed=0,
    )
    rng = np.random.default_rng(0)
    x = rng.integers(0, 5, (4, 5)).astype("int32")  # id 5 never occurs
    mask = np.ones((4, 5), bool)
    mask[1, 2:] = False
    ref = m.lower("numpy", "float64")
    want, want_masked = ref(x), ref(x, mask=mask)
    xi, mi = keras.Input((None,), dtype="int32"), keras.Input((None,), dtype="bool")
    layer = RecurrentLayer(m, name="rnn")
    km = keras.Model(xi, layer(xi))
    masked = keras.Model([xi, mi], layer(xi, mask=mi))
    out = {
        "predict": float(np.abs(km.predict(x, verbose=0) - want).max()),
        "masked": float(np.abs(masked.predict([x, mask], verbose=0) - want_masked).max()),
    }
    before = layer.get_rshop_weights()["emb/embeddings"]
    km.compile(optimizer=keras.optimizers.Adam(0.05), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    y = np.roll(x, -1, axis=1)
    first = float(km.evaluate(x, y, verbose=0))
    km.fit(x, y, epochs=15, batch_size=4, verbose=0)
    after = layer.get_rshop_weights()["emb/embeddings"]
    out["fit"] = {
        "before": first,
        "after": float(km.evaluate(x, y, verbose=0)),
        "seen_rows_changed": bool(np.all(np.abs(after[:5] - before[:5]).max(axis=1) > 0)),
        "unseen_row_kept": bool(np.array_equal(after[5], before[5])),
    }
    path = os.path.join(tempfile.mkdtemp(), "ids.keras")
    km.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    out["loaded"] = float(np.abs(loaded.predict(x, verbose=0) - km.predict(x, verbose=0)).max())
    try:
        layer(x.astype("float32"))
        out["float_ids"] = "no error"
    except RshopDTypeError as err:  # Keras adds its own lines around the rshop message
        out["float_ids"] = type(err).__name__ + ": " + str(err)
    return out


if __name__ == "__main__":
    main()
