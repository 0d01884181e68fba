"""Every composition feature on every engine equals the numpy float64 reference (outputs, states, gradients)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from .composition_cases import FEATURES, X
from .runs import as_tuple, assert_close, central_differences, harness, native, reference, run
from .tolerances import FORWARD_ATOL, GRAD_RTOL

SEQ = dict(return_sequences=True, return_states=True)


@pytest.mark.parametrize("feature", sorted(FEATURES))
@pytest.mark.parametrize("seq", [True, False], ids=["sequences", "last"])
def test_feature_matches_reference(engine: str, feature: str, seq: bool) -> None:
    build, opts, _, call = FEATURES[feature]
    model = build(**{**opts, **(SEQ if seq else {})})
    want = reference(model, X[feature], **call)
    got = run(model, engine, X[feature], **call)
    assert_close(got, want, FORWARD_ATOL["float32"], f"{engine}/{feature}")


GRAD_FEATURES = [
    "teacher_forcing",
    "teacher_forcing_backwards",
    "decode",
    "state_sync",
    "readout_add",
    "nested",
    "state_initializers",
    "dropout_training",
    "lengths_backwards",
    "mask_readout",
    "bidirectional_concat",
    "bidirectional_sum_lengths",
]


def _fd_grads(model: Any, x: Any, call: dict[str, Any], w_out: np.ndarray) -> Any:
    layer = model.lower("numpy", "float64")

    def loss() -> Any:
        layer.reseed(0)  # the same dropout masks at every evaluation
        return float(np.sum(as_tuple(layer(x, **call))[0] * w_out))

    return central_differences(layer.params, loss)


@pytest.mark.parametrize("feature", GRAD_FEATURES)
def test_feature_gradients(trainable_engine: str, feature: str) -> None:
    build, opts, _, call = FEATURES[feature]
    model = build(**{**opts, "return_sequences": True})
    x = X[feature]
    y = as_tuple(model.lower("numpy", "float64")(x, **call))[0]
    w_out = np.random.default_rng(5).standard_normal(y.shape)
    want = _fd_grads(model, x, call, w_out)
    h = harness(trainable_engine)
    layer = model.lower(trainable_engine)
    layer.reseed(0)
    kwargs = {k: native(h, v, "float32") if isinstance(v, np.ndarray) else v for k, v in call.items()}
    got = h.loss_grads(layer, native(h, x, "float32"), w_out.astype(np.float32), **kwargs)
    assert sorted(got) == sorted(want)
    scale = max(1.0, max(float(np.max(np.abs(g))) for g in want.values()))
    for name in want:
        err = float(np.max(np.abs(got[name].astype(np.float64) - want[name])))
        assert err <= GRAD_RTOL["float32"] * scale, f"{trainable_engine}/{feature}: d/d {name} off by {err:.3g}"
