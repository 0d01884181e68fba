"""Every optimisation pass keeps the numbers: outputs against the numpy float64 engine
(which runs no pass) and gradients against the same engine without the pass."""

from __future__ import annotations

import numpy as np
import pytest

from rshop_core.passes import ORDER

from .cases import CASES
from .composition_cases import FEATURES, X
from .conftest import as_tuple, assert_close, harness, native, reference, run
from .tolerances import FORWARD_ATOL, GRAD_RTOL

PIPELINES = {name: (name,) for name in ORDER} | {"all": ORDER, "all_but_hoist": ORDER[:-1]}
# the wiring features whose plans the passes see differently (scanned ground truth, decode,
# stacks, nesting, dropout constants, masks, two models)
FEATURE_SUBSET = [
    "teacher_forcing",
    "decode",
    "state_sync",
    "readout_add",
    "nested",
    "dropout_training",
    "mask",
    "bidirectional_sum_lengths",
]


def _dtype(engine):
    return "float64" if engine == "numpy" else "float32"  # numpy: a tight check of the rewrite itself


@pytest.mark.parametrize("pipeline", sorted(PIPELINES))
@pytest.mark.parametrize("case", sorted(CASES))
def test_pass_keeps_outputs(engine, case, pipeline):
    c = CASES[case]
    model = c.build(return_sequences=True, return_states=True)
    x, consts = c.inputs(batch=3, steps=6, seed=11)
    want = reference(model, x, constants=consts)
    dt = _dtype(engine)
    layer = model.lower(engine, dt, passes=PIPELINES[pipeline], fast_path=False)
    got = run(model, engine, x, dt, constants=consts, layer=layer)
    assert_close(got, want, FORWARD_ATOL[dt], f"{engine}/{case}/{pipeline}")


@pytest.mark.parametrize("feature", FEATURE_SUBSET)
def test_full_pipeline_on_wiring_features(engine, feature):
    build, opts, _, call = FEATURES[feature]
    model = build(**{**opts, "return_sequences": True})
    want = reference(model, X[feature], **call)
    dt = _dtype(engine)
    layer = model.lower(engine, dt, passes=ORDER, fast_path=False)
    got = run(model, engine, X[feature], dt, layer=layer, **call)
    assert_close(got, want, FORWARD_ATOL[dt], f"{engine}/{feature}")


def _grads(engine, model, x, w_out, passes, consts=None, call=None):
    h = harness(engine)
    layer = model.lower(engine, passes=passes, fast_path=False)
    layer.reseed(0)
    conv = None if consts is None else [h.to_native(a, "float32") for a in consts]
    kwargs = {k: native(h, v, "float32") if isinstance(v, np.ndarray) else v for k, v in (call or {}).items()}
    return h.loss_grads(layer, h.to_native(x, "float32"), w_out.astype(np.float32), constants=conv, **kwargs)


def _assert_same_grads(got, want, what):
    assert sorted(got) == sorted(want)
    scale = max(1.0, max(float(np.max(np.abs(g))) for g in want.values()))
    for name in want:
        err = float(np.max(np.abs(got[name].astype(np.float64) - want[name])))
        assert err <= GRAD_RTOL["float32"] * scale, f"{what}: d/d {name} off by {err:.3g}"


_NO_PASS_GRADS: dict = {}


@pytest.mark.parametrize("pipeline", sorted(PIPELINES))
@pytest.mark.parametrize("case", sorted(CASES))
def test_pass_keeps_gradients(trainable_engine, case, pipeline):
    c = CASES[case]
    model = c.build(return_sequences=True)
    x, consts = c.inputs(batch=2, steps=5, seed=12)
    y = as_tuple(model.lower("numpy", "float64")(x, constants=consts))[0]
    w_out = np.random.default_rng(13).standard_normal(y.shape)
    key = (trainable_engine, case)
    if key not in _NO_PASS_GRADS:  # the reference is the same for every pipeline: one compile, not one per pipeline
        _NO_PASS_GRADS[key] = _grads(trainable_engine, model, x, w_out, (), consts)
    want = _NO_PASS_GRADS[key]
    got = _grads(trainable_engine, model, x, w_out, PIPELINES[pipeline], consts)
    _assert_same_grads(got, want, f"{trainable_engine}/{case}/{pipeline}")


@pytest.mark.parametrize(
    "feature", ["teacher_forcing", "decode", "state_sync", "dropout_training", "bidirectional_sum_lengths"]
)
def test_full_pipeline_gradients_on_wiring_features(trainable_engine, feature):
    build, opts, _, call = FEATURES[feature]
    model = build(**{**opts, "return_sequences": True})
    x = X[feature]
    y = as_tuple(model.lower("numpy", "float64")(x, **call))[0]
    w_out = np.random.default_rng(14).standard_normal(y.shape)
    want = _grads(trainable_engine, model, x, w_out, (), call=call)
    got = _grads(trainable_engine, model, x, w_out, ORDER, call=call)
    _assert_same_grads(got, want, f"{trainable_engine}/{feature}")
