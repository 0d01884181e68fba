"""Keras 3 integration (rshop_backends.keras): RecurrentLayer on every installed Keras backend, the importer.

Keras fixes its backend at import, so each backend runs tests/keras_backend_report.py once in its own
process (``KERAS_BACKEND`` set) and reports JSON; the tests below read that report. The importer is
backend-neutral and is tested in this process.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from rshop_backends.keras import from_keras_step, keras_weight_name, rshop_weight_name  # noqa: E402
from rshop_core import RecurrentModel, RshopConfigError  # noqa: E402

BACKENDS = ("jax", "torch", "tensorflow")

SCRIPT = Path(__file__).with_name("keras_backend_report.py")  # the checks, one process per backend


@pytest.fixture(scope="module", params=BACKENDS)
def report(request, tmp_path_factory):
    backend = request.param
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"Keras backend {backend!r} needs {backend}, not installed in this session")
    workdir = tmp_path_factory.mktemp(f"keras_{backend}")
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run(
        [sys.executable, str(SCRIPT)], capture_output=True, text=True, env=env, timeout=900, cwd=str(workdir)
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("REPORT ")]
    assert proc.returncode == 0 and lines, (
        f"KERAS_BACKEND={backend} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    )
    out = json.loads(lines[-1][len("REPORT ") :])
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


def test_fit_trains_through_a_time_parallel_scan(report):
    fit = report["fit_parallel"]
    assert fit["after"] < 0.8 * fit["before"], fit


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


def test_bool_constant_reaches_rshop_and_survives_a_keras_file(report):
    assert report["bool_constant"]["predict"] < 1e-5 and report["bool_constant"]["loaded"] < 1e-5, report


def test_int32_ids_as_x_predict_fit_and_save(report):
    """Token ids from an int32 keras.Input are the scanned x: the same numbers as numpy float64, with a Keras
    mask too; fit trains the embedding rows of the ids that occur (and only those); a .keras file reloads;
    float ids are the RshopDTypeError every engine raises."""
    r = report["int_x"]
    assert r["predict"] < 1e-5 and r["masked"] < 1e-5 and r["loaded"] < 1e-6, r
    assert r["fit"]["after"] < 0.7 * r["fit"]["before"] and r["fit"]["seen_rows_changed"], r
    assert r["fit"]["unseen_row_kept"], r
    assert (
        r["float_ids"].startswith("RshopDTypeError: ")
        and (
            "RecurrentModel 'recurrent_model', argument x 'ids': expected dtype int32, received float32. rshop never "
            "casts silently: pass a int32 array (its Input declares dtype='int32'), e.g. arr.astype('int32')."
        )
        in r["float_ids"]
    ), r


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
        states = res[n_out:] if len(res) > n_out else res[: len(states)]
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
    c_new = L.Add()(
        [
            L.Multiply()([gate(z), c]),
            L.Multiply()([L.Dense(6, activation="tanh")(L.Dropout(0.5)(z)), L.Subtract()([c, gate(z)])]),
        ]
    )
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
