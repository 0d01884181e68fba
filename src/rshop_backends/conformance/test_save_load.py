"""Saved once, loaded anywhere: every case and feature survives a .rshop round trip on every engine,
and a model trained on one engine and saved loads on all others with the same outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import rshop_core
from rshop_core import serialization

from .cases import CASES
from .composition_cases import FEATURES, X
from .runs import assert_close, harness, native, reference, run
from .tolerances import FORWARD_ATOL


def perturbed(model: Any, seed: int = 0) -> Any:
    rng = np.random.default_rng(seed)
    model.set_weights(
        {k: (v + 0.1 * rng.standard_normal(v.shape)).astype(v.dtype) for k, v in model.get_weights().items()}
    )
    return model


@pytest.mark.parametrize("feature", sorted(FEATURES))
def test_feature_round_trip(engine: str, feature: str) -> None:
    build, opts, _, call = FEATURES[feature]
    model = perturbed(build(**{**opts, "return_sequences": True, "return_states": True}))
    loaded = serialization.loads(serialization.dumps(model))
    assert serialization.to_document(loaded) == serialization.to_document(model)
    assert_close(
        run(loaded, engine, X[feature], **call),
        reference(model, X[feature], **call),
        FORWARD_ATOL["float32"],
        f"{engine}/{feature} after load",
    )


@pytest.mark.parametrize("case", sorted(CASES))
def test_case_round_trip(engine: str, case: str, tmp_path: Path) -> None:
    c = CASES[case]
    model = perturbed(c.build(return_sequences=True, return_states=True))
    loaded = rshop_core.load(model.save(tmp_path / f"{case}.rshop"))
    x, consts = c.inputs()
    assert_close(
        run(loaded, engine, x, constants=consts),
        reference(model, x, constants=consts),
        FORWARD_ATOL["float32"],
        f"{engine}/{case} after load",
    )


def test_trained_on_one_engine_served_on_all(trainable_engine: str, tmp_path: Path) -> None:
    from rshop_backends import engines

    c = CASES["lstm"]
    model = c.build(return_sequences=True)
    layer = model.lower(trainable_engine)
    h = harness(trainable_engine)
    x, _ = c.inputs(seed=11)
    grads = h.loss_grads(layer, native(h, x, "float32"), np.ones((3, 5, 6), np.float32))
    layer.set_weights({k: v - 0.5 * grads[k] for k, v in layer.get_weights().items()})  # one training step
    trained = run(model, trainable_engine, x, layer=layer)
    loaded = rshop_core.load(layer.save(tmp_path / "trained.rshop"))
    assert any(not np.array_equal(loaded.get_weights()[k], model.get_weights()[k]) for k in grads)
    for other, installed in engines().items():
        if installed and other in ("numpy", "jax", "torch", "tensorflow"):
            assert_close(run(loaded, other, x), trained, 2 * FORWARD_ATOL["float32"], f"{trainable_engine}->{other}")
