"""Weights as numpy dicts on every lowered object: read, write, checked like the model's."""

from __future__ import annotations

import numpy as np
import pytest

from rshop_core.errors import RshopConfigError, RshopDTypeError, RshopShapeError

from .cases import CASES
from .runs import assert_close, reference, run
from .tolerances import FORWARD_ATOL


def test_initial_weights_are_the_models(engine: str) -> None:
    model = CASES["gru"].build()
    got = model.lower(engine).get_weights()
    want = model.get_weights()
    assert sorted(got) == sorted(want)
    for k in want:
        assert got[k].dtype == np.float32
        np.testing.assert_array_equal(got[k], want[k])  # bit-identical starting weights


def test_set_weights_changes_what_runs(engine: str) -> None:
    c = CASES["lstm"]
    model = c.build(return_sequences=True)
    layer = model.lower(engine)
    rng = np.random.default_rng(3)
    new = {k: (0.3 * rng.standard_normal(v.shape)).astype(np.float32) for k, v in model.get_weights().items()}
    layer.set_weights(new)
    for k in new:
        np.testing.assert_array_equal(layer.get_weights()[k], new[k])
    model.set_weights(new)
    x, _ = c.inputs(seed=5)
    assert_close(run(model, engine, x, layer=layer), reference(model, x), FORWARD_ATOL["float32"], engine)


@pytest.mark.parametrize(
    "bad,cls,fragment",
    [
        ("missing", RshopConfigError, "received missing ['lstm_cell/bias']"),
        ("shape", RshopShapeError, "weight 'lstm_cell/bias': expected shape (24,), received (3,)"),
        ("dtype", RshopDTypeError, "weight 'lstm_cell/bias': expected dtype float32, received float64"),
    ],
)
def test_set_weights_rejects(engine: str, bad: str, cls: type[Exception], fragment: str) -> None:
    model = CASES["lstm"].build()
    layer = model.lower(engine)
    w = model.get_weights()
    if bad == "missing":
        del w["lstm_cell/bias"]
    elif bad == "shape":
        w["lstm_cell/bias"] = np.zeros(3, np.float32)
    else:
        w["lstm_cell/bias"] = np.zeros(24)
    with pytest.raises(cls) as info:
        layer.set_weights(w)
    assert fragment in str(info.value)
    assert str(info.value).startswith(f"{engine} layer of RecurrentModel 'lstm'")
