"""Bad calls raise the same RshopError, with the same message, on every engine."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from rshop_core.errors import RshopConfigError, RshopDTypeError, RshopEngineError, RshopError, RshopShapeError

from .cases import CASES
from .runs import harness

rng = np.random.default_rng(0)
X = rng.standard_normal((2, 3, 4))

BAD_CALLS: dict[str, tuple[str, np.ndarray, dict[str, list[np.ndarray]], type[RshopError], str]] = {
    # name: (case, x, kwargs, error class, fragment of the message)
    "no_time_axis": ("lstm", X[:, 0], {}, RshopShapeError, "expected an array of shape (batch, time, 4) (rank 3)"),
    "wrong_features": ("lstm", rng.standard_normal((2, 3, 5)), {}, RshopShapeError, "received shape (2, 3, 5)"),
    "wrong_dtype": ("lstm", X.astype(np.float64), {}, RshopDTypeError, "expected dtype float32, received float64"),
    "empty_sequence": ("lstm", X[:, :0], {}, RshopShapeError, "expected at least one time step"),
    "state_count": (
        "lstm",
        X,
        {"initial_state": [np.zeros((2, 6))]},
        RshopConfigError,
        "expected 2 states ['h', 'c'], received 1",
    ),
    "state_shape": (
        "lstm",
        X,
        {"initial_state": [np.zeros((2, 6)), np.zeros((2, 5))]},
        RshopShapeError,
        "initial state #1 'c': expected an array of shape (batch, 6)",
    ),
    "state_batch": (
        "lstm",
        X,
        {"initial_state": [np.zeros((3, 6)), np.zeros((3, 6))]},
        RshopShapeError,
        "expected batch size 2",
    ),
    "constants_missing": ("attention", X, {}, RshopConfigError, "expected 1 constant(s), received 0"),
    "constants_unexpected": (
        "lstm",
        X,
        {"constants": [np.zeros((2, 7, 8))]},
        RshopConfigError,
        "expected 0 constant(s), received 1",
    ),
    "constant_shape": (
        "attention",
        X,
        {"constants": [np.zeros((2, 7, 5))]},
        RshopShapeError,
        "constant #0: expected an array of shape (batch, ?, 8)",
    ),
}


def _call(engine: str, name: str) -> Any:
    case, x, kwargs, _, _ = BAD_CALLS[name]
    model = CASES[case].build()
    layer = model.lower(engine)
    h = harness(engine)
    native = {k: [h.to_native(a, "float32") for a in v] for k, v in kwargs.items()}
    with h.float64_scope():
        x = h.to_native(x, "float64" if name == "wrong_dtype" else "float32")
        with pytest.raises(RshopError) as info:
            layer(x, **native)
    return info.value


@pytest.mark.parametrize("name", sorted(BAD_CALLS))
def test_bad_call_same_error_everywhere(engine: str, name: str) -> None:
    _, _, _, cls, fragment = BAD_CALLS[name]
    err = _call(engine, name)
    assert type(err) is cls, f"{engine}: {type(err).__name__}: {err}"
    assert fragment in str(err), str(err)
    assert str(err) == str(_call("numpy", name)), "message differs from the numpy engine's"


def test_other_engines_arrays_rejected(engine: str) -> None:
    model = CASES["lstm"].build()
    layer = model.lower(engine)
    numpy_native = isinstance(harness(engine).to_native(X, "float32"), np.ndarray)  # numpy, or a plug-in on numpy
    foreign = X.astype(np.float32).tolist() if numpy_native else X.astype(np.float32)
    with pytest.raises(RshopEngineError, match=rf"{engine} layer of RecurrentModel 'lstm', argument x: expected "):
        layer(foreign)
