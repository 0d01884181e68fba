"""Keras 3 integration (rshop_backends.keras): RecurrentLayer on every installed Keras backend, the importer.

Keras fixes its backend at import, so each backend runs :data:`SCRIPT` once in its own process
(``KERAS_BACKEND`` set) and reports JSON; the tests below read that report. The importer is
backend-neutral and is tested in this process.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from rshop_backends.keras import from_keras_step, keras_weight_name, rshop_weight_name  # noqa: E402
from rshop_core import RecurrentModel, RshopConfigError  # noqa: E402

BACKENDS = ("jax", "torch", "tensorflow")

SCRIPT = r'''
import json, os, sys, tempfile
import numpy as np
import keras
from rshop_core import Bidirectional, Input, RecurrentModel
from rshop_core import functional as F
from rshop_core.cells import GRUCell, LSTMCell
from rshop_core.layers import Activation, Dense, add
from rshop_backends.keras import RecurrentLayer

report = {"backend": keras.backend.backend()}
rng = np.random.default_rng(0)
x = rng.standard_normal((4, 7, 5)).astype("float32")
np_ = keras.ops.convert_to_numpy


def listed(v):
    return [np.asarray(np_(a)) for a in (v if isinstance(v, (list, tuple)) else [v])]


def diff(got, ref):
    return max(float(np.abs(a - b).max()) for a, b in zip(listed(got), listed(ref)))


def readme(**options):
    x_t = Input(shape=(5,)); h_tm1 = Input(shape=(10,))
    h_t = Activation("tanh")(add([Dense(10)(x_t), Dense(10, use_bias=False)(h_tm1)]))
    return RecurrentModel(input=x_t, initial_states=[h_tm1], output=h_t, final_states=[h_t], seed=0, **options)


models = {
    "readme": readme(return_sequences=True),
    "lstm_states": LSTMCell(6, input_dim=5).get_layer(return_sequences=True, return_states=True, seed=1),
    "bidirectional": Bidirectional(GRUCell(3, input_dim=5).get_layer(seed=2, return_sequences=True)),
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
report["fit"] = {"before": before, "after": after, "names": sorted(after_w),
                 "changed": min(float(np.abs(after_w[k] - before_w[k]).max()) for k in after_w)}
a, b = layer(x, training=True), layer(x, training=True)
report["dropout"] = {"training_calls_differ": diff(a, b) > 0, "inference_equal": diff(layer(x), layer(x)) == 0}

# 3. a Keras mask (Masking; Embedding(mask_zero=True)) reaches rshop as mask=
m = readme(return_sequences=True, return_states=True)
xm = x.copy(); xm[1, 4:] = 0.0; xm[2, 2:] = 0.0
mask = np.ones((4, 7), bool); mask[1, 4:] = False; mask[2, 2:] = False
ref = m.lower("numpy", "float64")(xm.astype("float64"), mask=mask)
inp = keras.Input((7, 5))
layer = RecurrentLayer(m)
km = keras.Model(inp, layer(keras.layers.Masking()(inp)))
report["masking"] = diff(km.predict(xm, verbose=0), ref)
report["compute_mask_is_input_mask"] = bool(np.array_equal(
    np_(layer.compute_mask(keras.ops.convert_to_tensor(xm), keras.ops.convert_to_tensor(mask))[0]), mask))
tokens = np.array([[3, 1, 4, 0, 0], [2, 7, 1, 8, 2]], "int32")
emb = keras.layers.Embedding(10, 5, mask_zero=True)
inp = keras.Input((5,), dtype="int32")
layer = RecurrentLayer(readme(return_sequences=True))
km = keras.Model(inp, layer(emb(inp)))
got = km.predict(tokens, verbose=0)
table = np_(emb.embeddings).astype("float64")
report["embedding_mask"] = diff(got, readme(return_sequences=True).lower("numpy", "float64")(
    table[tokens], mask=tokens != 0))

# 4. initial_state as a Keras input of the functional model
m = readme(return_states=True)
h0 = rng.standard_normal((4, 10)).astype("float32")
inp, state = keras.Input((None, 5)), keras.Input((10,))
km = keras.Model([inp, state], RecurrentLayer(m)(inp, initial_state=[state]))
report["initial_state"] = diff(km.predict([x, h0], verbose=0),
                               m.lower("numpy", "float64")(x.astype("float64"), initial_state=[h0.astype("float64")]))

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
m = RecurrentModel(input=xt, initial_states=[ht], output=Dense(2, name="out")(h_new), final_states=[h_new],
                   readout_input=yt, teacher_force=True, return_sequences=True, seed=5)
gt = rng.standard_normal((4, 7, 2)).astype("float32")
inp, truth = keras.Input((7, 5)), keras.Input((7, 2))
layer = RecurrentLayer(m)
km = keras.Model([inp, truth], layer(inp, ground_truth=truth))
ref = m.lower("numpy", "float64")
report["teacher"] = {
    "predict_runs_free": diff(km.predict([x, gt], verbose=0), ref(x.astype("float64"))),
    "training_forces": diff(layer(x, ground_truth=gt, training=True),
                            ref(x.astype("float64"), ground_truth=gt.astype("float64"), training=True))}
print("REPORT " + json.dumps(report))
'''


@pytest.fixture(scope="module", params=BACKENDS)
def report(request, tmp_path_factory):
    backend = request.param
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"Keras backend {backend!r} needs {backend}, not installed in this session")
    script = tmp_path_factory.mktemp(f"keras_{backend}") / "check.py"
    script.write_text(SCRIPT, encoding="utf-8")
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=900,
                          cwd=str(script.parent))
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("REPORT ")]
    assert proc.returncode == 0 and lines, \
        f"KERAS_BACKEND={backend} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    out = json.loads(lines[-1][len("REPORT "):])
    assert out["backend"] == backend
    return out


def test_outputs_equal_numpy_float64(report):
    for name, d in report["parity"].items():
        assert d["eager"] < 1e-5 and d["predict"] < 1e-5, (name, d)


def test_fit_trains_the_rshop_weights(report):
    fit = report["fit"]
    assert fit["after"] < fit["before"], fit
    assert fit["changed"] > 0, fit
    assert fit["names"] == ["lstm_cell/bias", "lstm_cell/kernel", "lstm_cell/recurrent_kernel"]


def test_dropout_draws_in_training_only(report):
    assert report["dropout"] == {"training_calls_differ": True, "inference_equal": True}


def test_keras_masks_reach_rshop(report):
    assert report["masking"] < 1e-5
    assert report["embedding_mask"] < 1e-5
    assert report["compute_mask_is_input_mask"]


def test_initial_state_from_a_keras_input(report):
    assert report["initial_state"] < 1e-5


def test_config_and_keras_file_round_trip(report):
    assert report["config"] < 1e-6
    assert report["saved"] < 1e-6
    assert report["saved_class"] == "RecurrentLayer"


def test_ground_truth_teacher_forces_in_fit_only(report):
    assert report["teacher"]["predict_runs_free"] < 1e-5, report["teacher"]
    assert report["teacher"]["training_forces"] < 1e-5, report["teacher"]


# -- names -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["lstm_cell/kernel", "a-b/c", "x-_y/-/z", "forward/dense_1/bias", "initial_state/h"])
def test_weight_names_are_reversible_and_slash_free(name):
    k = keras_weight_name(name)
    assert "/" not in k and "." not in k
    assert rshop_weight_name(k) == name


# -- the importer (backend-neutral: runs on this process's Keras backend) --------------------
L = keras.layers


def _run_step(step, x, states, n_out=1):
    """Run the Keras step model by hand over time: [outputs per step], final states."""
    ys = []
    for t in range(x.shape[1]):
        res = step([x[:, t], *states])
        res = [np.asarray(keras.ops.convert_to_numpy(r)) for r in (res if isinstance(res, (list, tuple)) else [res])]
        ys.append(res[0])
        states = res[n_out:] if len(res) > n_out else res[:len(states)]
    return np.stack(ys, axis=1), states


def test_importer_readme_step():
    x_t, h_tm1 = keras.Input((5,), name="x"), keras.Input((10,), name="h")
    h_t = L.Activation("tanh")(L.Add()([L.Dense(10)(x_t), L.Dense(10, use_bias=False)(h_tm1)]))
    step = keras.Model([x_t, h_tm1], h_t)
    rnn = from_keras_step(step, initial_states=[h_tm1], final_states=[h_t], return_sequences=True, seed=0)
    assert [s.name for s in rnn.state_specs] == ["h"] and len(rnn.params) == 3
    x = np.random.default_rng(0).standard_normal((3, 6, 5)).astype("float32")
    want, _ = _run_step(step, x, [np.zeros((3, 10), "float32")])
    got = rnn.lower("numpy", "float64")(x.astype("float64"))
    assert np.abs(got - want).max() < 1e-5
    again = RecurrentModel.from_keras(step, initial_states=[h_tm1], final_states=[h_t], return_sequences=True)
    assert np.abs(again.lower("numpy", "float64")(x.astype("float64")) - want).max() < 1e-5


def test_importer_concatenate_multiply_dropout_two_states():
    x_t, h, c = keras.Input((4,)), keras.Input((6,), name="h"), keras.Input((6,), name="c")
    z = L.Concatenate()([x_t, h])
    gate = L.Dense(6, activation="sigmoid", name="gate")
    c_new = L.Add()([L.Multiply()([gate(z), c]),
                     L.Multiply()([L.Dense(6, activation="tanh")(L.Dropout(0.5)(z)), L.Subtract()([c, gate(z)])])])
    h_new = L.Multiply()([L.Activation("tanh")(c_new), L.Dense(6, activation="sigmoid")(z)])
    y = L.Average()([h_new, L.Maximum()([h_new, c_new])]) * 2.0 - c_new  # keras.ops arithmetic too
    step = keras.Model([x_t, h, c], [y, h_new, c_new])
    rnn = from_keras_step(step, [h, c], [h_new, c_new], return_sequences=True, return_states=True, seed=1)
    assert [s.name for s in rnn.state_specs] == ["h", "c"]
    assert sum(k.startswith("gate/") for k in rnn.params) == 2  # a layer used twice keeps one set of weights
    x = np.random.default_rng(1).standard_normal((2, 5, 4)).astype("float32")
    zeros = np.zeros((2, 6), "float32")
    want, (h_want, c_want) = _run_step(step, x, [zeros, zeros])
    got, h_got, c_got = rnn.lower("numpy", "float64")(x.astype("float64"))
    for a, b in ((got, want), (h_got, h_want), (c_got, c_want)):
        assert np.abs(a - b).max() < 1e-5
    assert any(n.op == "dropout" for n in rnn.graph.nodes)


def test_importer_rejects_unsupported_layers_by_name():
    x_t, h = keras.Input((3,)), keras.Input((3,))
    out = L.Lambda(lambda v: v * 2.0, name="doubler")(L.Add()([x_t, h]))
    step = keras.Model([x_t, h], out)
    with pytest.raises(RshopConfigError, match=r"Lambda 'doubler'"):
        from_keras_step(step, [h], [out])
    out = L.LayerNormalization(name="norm")(L.Add()([x_t, h]))
    with pytest.raises(RshopConfigError, match=r"LayerNormalization 'norm'"):
        from_keras_step(keras.Model([x_t, h], out), [h], [out])
