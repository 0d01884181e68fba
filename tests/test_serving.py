"""Serving formats (``rshop_backends.serving``): an LSTM, a GRU and a custom cell exported to each engine's
deployment format, reloaded in a FRESH process by the framework alone (the loader never imports rshop: it
asserts so), run at a batch and T unlike the exporter's (2 and 3), and compared with the numpy float64
reference (float32 tolerance of the conformance table, scaled by max(1, max |reference|)).

One subprocess per engine for the whole module (all its formats and models), in that engine's session only;
the refusals are engine-neutral (checked on the numpy lowering, in every session) but for torch's train mode.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from tests.conformance.conftest import only_engine

from rshop_backends import cli, serving, tolerances
from rshop_core import Input, RecurrentModel, initializers
from rshop_core import functional as F
from rshop_core.cells import GRUCell, LSTMCell
from rshop_core.errors import RshopConfigError
from rshop_core.layers import Dense

D = 3
ENGINE_FORMATS = {"tensorflow": ("savedmodel",), "torch": ("torch", "onnx"), "jax": ("jax",)}
FORMAT_ENGINE = {f: e for e, fs in ENGINE_FORMATS.items() for f in fs}
SIZES = {"batch": 4, "time": 9, "constant_0_dim_0": 5}  # none is a tracing size (2, 3, 4 for a constant's dim)


def custom_cell(**opts):
    """A cell written as in docs/guide.md: attention over a constant of any length (an encoder), x, h -> h'.
    Its einsums and softmax read the encoder's dynamic length inside the loop."""
    x_t, h_tm1, enc = Input((D,), name="x"), Input((6,), name="h"), Input((None, 4), name="encoder")
    scores = F.einsum("td,d->t", enc, Dense(4, name="query")(h_tm1))
    context = F.einsum("t,td->d", F.softmax(scores), enc)  # (4,)
    h_t = Dense(6, activation="tanh")(F.concat([x_t, context, h_tm1]))
    return RecurrentModel(
        input=x_t,
        initial_states=[h_tm1],
        output=h_t,
        final_states=[h_t],
        constants=[enc],
        seed=3,
        name="custom",
        **opts,
    )


# model -> (builder, export options): initial states as inputs, a mask, a constant with a dynamic dimension
MODELS = {
    "lstm": (
        lambda: LSTMCell(4, input_dim=D).get_layer(seed=1, return_sequences=True, return_states=True),
        {"initial_state": True},
    ),
    "gru": (lambda: GRUCell(5, input_dim=D).get_layer(seed=2, go_backwards=True), {"mask": True}),
    "custom": (lambda: custom_cell(return_sequences=True), {}),
}

# the fresh process: framework APIs only
LOADER = textwrap.dedent("""
    import json, sys
    import numpy as np

    def savedmodel(path, names, arrays):
        import tensorflow as tf
        serve = tf.saved_model.load(path).signatures["serving_default"]
        out = serve(**{n: tf.constant(a) for n, a in zip(names, arrays)})
        return [out[k].numpy() for k in sorted(out, key=lambda k: int(k.rpartition("_")[2]))]

    def torch(path, names, arrays):
        import torch
        module = torch.export.load(path).module()
        with torch.no_grad():
            return [y.numpy() for y in module(*(torch.from_numpy(a) for a in arrays))]

    def onnx(path, names, arrays):
        import onnxruntime
        session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        return session.run(None, dict(zip(names, arrays)))

    def jax(path, names, arrays):
        from jax import export
        with open(path, "rb") as f:
            exported = export.deserialize(bytearray(f.read()))
        return [np.asarray(y) for y in exported.call(*arrays)]

    jobs, folder = json.loads(sys.argv[1]), sys.argv[2]
    inputs = np.load(folder + "/inputs.npz")
    got = {}
    for key, (fmt, path) in jobs.items():
        model = key.partition("/")[2]
        keys = sorted(k for k in inputs.files if k.startswith(model + "/"))
        names = [k.partition("/")[2].partition("_")[2] for k in keys]
        for i, y in enumerate(globals()[fmt](path, names, [inputs[k] for k in keys])):
            got[f"{key}/{i}"] = np.asarray(y)
    assert not [m for m in sys.modules if m.startswith("rshop")], "the artefact needed rshop"
    np.savez(folder + "/got.npz", **got)
""")


@pytest.fixture(scope="module")
def models():
    return {name: build() for name, (build, _) in MODELS.items()}


@pytest.fixture(scope="module")
def inputs(models):
    """Per model: the signature's inputs at SIZES (numpy float32) and the float64 reference outputs."""
    out = {}
    for name, model in models.items():
        opts = MODELS[name][1]
        sig = serving.signature(model.lower("numpy"), **opts)
        args = sig.samples(SIZES, seed=7)
        x, consts, states, mask = sig.split([a.astype("float64") if a.dtype.kind == "f" else a for a in args])
        want = model.lower("numpy", "float64")(x, initial_state=states, constants=consts, mask=mask)
        out[name] = (sig, args, want if isinstance(want, tuple) else (want,))
    return out


@pytest.fixture(scope="module")
def reloaded(models, inputs, tmp_path_factory):
    """``reloaded(request, engine)``: every model exported in each of the engine's formats, then run by one
    fresh process; ``{(format, model): outputs}``. Skips unless ``engine`` is under test."""
    cache: dict[str, dict] = {}

    def get(request, engine):
        only_engine(request, engine, f"exporting to {', '.join(ENGINE_FORMATS[engine])}")
        if engine not in cache:
            folder = tmp_path_factory.mktemp(f"serving_{engine}")
            arrays = {}
            for name, (sig, args, _) in inputs.items():
                arrays.update({f"{name}/{i:02d}_{s.name}": a for i, (s, a) in enumerate(zip(sig.inputs, args))})
            np.savez(folder / "inputs.npz", **arrays)
            jobs = {}
            for fmt in ENGINE_FORMATS[engine]:
                for name, model in models.items():
                    path = folder / f"{name}.{fmt}"
                    serving.export(model, path, fmt, **MODELS[name][1])
                    jobs[f"{fmt}/{name}"] = (fmt, str(path))
            proc = subprocess.run(
                [sys.executable, "-c", LOADER, json.dumps(jobs), str(folder)],
                capture_output=True,
                text=True,
                timeout=300,
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "TF_CPP_MIN_LOG_LEVEL": "2"},
                cwd=str(folder),
            )
            assert proc.returncode == 0, proc.stderr[-3000:]
            got = dict(np.load(folder / "got.npz"))
            cache[engine] = {
                (fmt, name): [got[f"{fmt}/{name}/{i}"] for i in range(len(inputs[name][2]))]
                for fmt in ENGINE_FORMATS[engine]
                for name in models
            }
        return cache[engine]

    return get


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("fmt", list(FORMAT_ENGINE))
def test_artefact_reloaded_in_a_fresh_process_matches_the_reference(request, reloaded, inputs, fmt, name):
    got = reloaded(request, FORMAT_ENGINE[fmt])[fmt, name]
    sig, _, want = inputs[name]
    assert len(got) == len(want) == len(sig.outputs)
    errors = []
    for i, (g, w) in enumerate(zip(got, want)):
        assert g.shape == w.shape, f"{fmt} {name} output_{i}: shape {g.shape}, expected {w.shape}"
        assert g.dtype == np.float32, f"{fmt} {name} output_{i}: dtype {g.dtype}"
        limit = tolerances.FORWARD_ATOL["float32"] * max(1.0, float(np.abs(w).max()))
        err = float(np.abs(g.astype(np.float64) - w).max())
        assert err <= limit, f"{fmt} {name} output_{i}: max abs error {err:.3g} > {limit:.3g}"
        errors.append(err)
    reports = getattr(request.config, "rshop_reports", [])  # the run's summary (tests/conftest.py)
    reports.append(f"serving: {fmt} {name} reloaded at batch 4, T 9: max abs error {max(errors):.3g}")


def test_signature_names_inputs_and_dynamic_dimensions(models):
    lstm = serving.signature(models["lstm"].lower("numpy"), initial_state=True, mask=True)
    assert [(s.name, s.shape, s.dtype) for s in lstm.inputs] == [
        ("x", ("batch", "time", D), "float32"),
        ("initial_state_0", ("batch", 4), "float32"),
        ("initial_state_1", ("batch", 4), "float32"),
        ("mask", ("batch", "time"), "bool"),
    ]
    assert lstm.outputs == ("output_0", "output_1", "output_2")  # the sequence, then h and c
    custom = serving.signature(models["custom"].lower("numpy", "float64"))
    assert [(s.name, s.shape, s.dtype) for s in custom.inputs] == [
        ("x", ("batch", "time", D), "float64"),
        ("constant_0", ("batch", "constant_0_dim_0", 4), "float64"),
    ]
    assert custom.dynamic == ("batch", "time", "constant_0_dim_0") and custom.outputs == ("output_0",)


def _decoder(**opts):
    x, s = Input((D,)), Input((4,))
    y = Dense(4, activation="tanh")(F.concat([x, s]))
    return RecurrentModel(input=x, initial_states=[s], output=y, final_states=[y], decode=True, seed=0, **opts)


@pytest.mark.parametrize(
    ("build", "options", "message"),
    [
        (lambda: GRUCell(3, input_dim=D).get_layer(stateful=True), {}, "expected a model with stateful=False"),
        (lambda: GRUCell(3, input_dim=D).get_layer(unroll=True), {}, "expected unroll=False or an int"),
        (
            lambda: GRUCell(3, input_dim=D).get_layer(state_initializer=initializers.RandomNormal()),
            {},
            "received random initializers for states ['h']. Random initial states are drawn by numpy",
        ),
        (_decoder, {}, "argument output_length: expected the number of steps to decode"),
        (lambda: _decoder(output_length=3), {"mask": True}, "argument mask: expected mask=False for a decoder"),
    ],
)
def test_what_cannot_be_exported_is_refused(build, options, message):
    layer = build().lower("numpy")
    with pytest.raises(RshopConfigError, match="export of RecurrentModel") as e:
        serving.signature(layer, **options)
    assert message in str(e.value)


def test_random_initial_states_export_when_passed_in():
    model = GRUCell(3, input_dim=D).get_layer(state_initializer=initializers.RandomNormal())
    sig = serving.signature(model.lower("numpy"), initial_state=True)
    assert [s.name for s in sig.inputs] == ["x", "initial_state_0"]


def test_decoder_signature_has_no_time_axis():
    sig = serving.signature(_decoder(output_length=3).lower("numpy"))
    assert sig.inputs[0].shape == ("batch", D) and sig.output_length == 3


def test_unknown_format_and_wrong_engine(tmp_path):
    model = GRUCell(3, input_dim=D).get_layer()
    with pytest.raises(RshopConfigError, match=r"argument format: expected one of \['jax', 'onnx', 'savedmodel'"):
        serving.export(model, tmp_path / "m", "tflite")
    with pytest.raises(RshopConfigError, match="expected a model or a torch layer for format 'onnx', received Numpy"):
        serving.export(model.lower("numpy"), tmp_path / "m", "onnx")
    with pytest.raises(RshopConfigError, match="argument path: expected a path in an existing directory, received"):
        serving.export(model, tmp_path / "missing" / "m", "jax")


def test_torch_train_mode_with_dropout_is_refused(request, tmp_path):
    only_engine(request, "torch", "torch's module mode")
    layer = LSTMCell(4, input_dim=D, dropout=0.5).get_layer(seed=0).lower("torch")  # a new module: train mode
    with pytest.raises(RshopConfigError, match=r"a layer in train mode whose model has dropout\. Call layer\.eval\(\)"):
        serving.export(layer, tmp_path / "m.pt2", "torch")
    serving.export(layer.eval(), tmp_path / "m.pt2", "torch")
    assert (tmp_path / "m.pt2").stat().st_size > 0


def test_cli_export_writes_and_verifies(engine, tmp_path, capsys):
    if engine not in ENGINE_FORMATS:
        pytest.skip(f"the {engine} engine writes no serving format")
    fmt = ENGINE_FORMATS[engine][0]
    saved = tmp_path / "gru.rshop"
    GRUCell(5, input_dim=D).get_layer(seed=2, return_sequences=True).save(saved)
    out = tmp_path / f"gru.{fmt}"
    assert cli.main(["export", str(saved), "--format", fmt, str(out), "--batch", "4", "--time", "6"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"wrote {fmt} artefact {out}"
    assert lines[1].startswith(f"{fmt} artefact vs the numpy float64 reference at batch 4, T 6: max abs error ")
    assert lines[1].endswith("(limit 1e-05): within tolerance")
    assert float(lines[1].split("max abs error ")[1].split()[0]) <= 1e-5


def test_cli_export_errors_exit_2(tmp_path, capsys):
    saved = tmp_path / "stateful.rshop"
    GRUCell(3, input_dim=D).get_layer(stateful=True).save(saved)
    assert cli.main(["export", str(saved), "--format", "jax", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rshop: export of RecurrentModel") and "expected a model with stateful=False" in err
    assert cli.main(["export", str(saved), "--format", "jax", str(tmp_path / "out"), "--time", "0"]) == 2
    assert "rshop export --batch / --time, argument steps: expected an int >= 1, received 0." in capsys.readouterr().err


def test_onnx_without_its_packages_names_the_extra(request, tmp_path, monkeypatch):
    only_engine(request, "torch", "the ONNX exporter")
    import importlib.util

    from rshop_core.errors import RshopEngineError

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxscript" else real(name, *a))
    with pytest.raises(
        RshopEngineError, match=r"received onnxscript missing\. Install them: pip install \"rshop\[onnx\]\""
    ):
        serving.export(GRUCell(3, input_dim=D).get_layer(), tmp_path / "m.onnx", "onnx")


def test_jax_without_flatbuffers_names_the_extra(request, tmp_path, monkeypatch):
    only_engine(request, "jax", "the jax.export format")
    import importlib.util

    from rshop_core.errors import RshopEngineError

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "flatbuffers" else real(name, *a))
    with pytest.raises(
        RshopEngineError, match=r"expected flatbuffers installed .* pip install \"rshop\[jax-serving\]\""
    ):
        serving.export(GRUCell(3, input_dim=D).get_layer(), tmp_path / "m.jax", "jax")


@pytest.mark.parametrize("fmt", list(FORMAT_ENGINE))
def test_unroll_and_remat_export_with_a_dynamic_time(request, tmp_path, fmt):
    """Loop options that do not change the numbers export too: jax runs a symbolic T one step per iteration
    without remat, the SavedModel leaves remat's custom gradient out, torch ignores both."""
    only_engine(request, FORMAT_ENGINE[fmt], f"exporting to {fmt}")
    model = GRUCell(4, input_dim=D).get_layer(seed=6, unroll=4, remat=2)
    path = serving.export(model, tmp_path / f"m.{fmt}", fmt)
    for batch, steps in [(3, 7), (1, 2)]:  # T above and below unroll's 4
        report = serving.verify(model, path, fmt, batch=batch, steps=steps)
        assert report.ok and report.max_error < 1e-5, str(report)
