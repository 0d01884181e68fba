"""Autodiff gradients of every trainable engine equal float64 central differences."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from .cases import CASES
from .runs import as_tuple, central_differences, harness
from .tolerances import GRAD_RTOL


def finite_differences(model: Any, x: Any, w_out: np.ndarray, constants: Any = None) -> Any:
    """Central differences of ``sum(y * w_out)`` on the numpy float64 engine, every parameter entry."""
    layer = model.lower("numpy", "float64")
    return central_differences(layer.params, lambda: float(np.sum(as_tuple(layer(x, constants=constants))[0] * w_out)))


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("options", ["sequences", "last_backwards"])
def test_gradients_match_finite_differences(trainable_engine: str, case: str, options: str) -> None:
    c = CASES[case]
    opts = dict(return_sequences=True) if options == "sequences" else dict(go_backwards=True)
    model = c.build(**opts)
    x, consts = c.inputs(batch=2, steps=4, seed=6)
    y = as_tuple(model.lower("numpy", "float64")(x, constants=consts))[0]
    w_out = np.random.default_rng(7).standard_normal(y.shape)
    want = finite_differences(model, x, w_out, consts)

    h = harness(trainable_engine)
    layer = model.lower(trainable_engine)
    conv = lambda v: None if v is None else [h.to_native(a, "float32") for a in v]
    got = h.loss_grads(layer, h.to_native(x, "float32"), w_out.astype(np.float32), constants=conv(consts))
    assert sorted(got) == sorted(want)
    scale = max(1.0, max(float(np.max(np.abs(g))) for g in want.values()))
    for name in want:
        err = float(np.max(np.abs(got[name].astype(np.float64) - want[name])))
        assert err <= GRAD_RTOL["float32"] * scale, f"{trainable_engine}/{case}: d/d {name} off by {err:.3g}"


def test_frozen_parameter_gets_no_update(trainable_engine: str) -> None:
    """A parameter declared trainable=False gets a zero gradient; a trainable one beside it does not.

    The harness lists every parameter (frozen ones included), so a frozen parameter that autodiff
    did train shows up as a non-zero gradient here on every engine.
    """
    from rshop_core import Input, RecurrentModel
    from rshop_core.layers import Layer

    class Frozen(Layer):
        def __call__(self, x: Any) -> Any:
            return x @ self.add_weight("kernel", (3, 3), "identity", trainable=False)

    class Trained(Layer):
        def __call__(self, x: Any) -> Any:
            return x @ self.add_weight("kernel", (3, 3), "identity")

    x_t, h = Input((3,)), Input((3,))
    out = (Frozen()(x_t) + Trained()(h)) * 0.5
    model = RecurrentModel(input=x_t, initial_states=[h], output=out, final_states=[out], seed=0)
    assert not model.params["frozen/kernel"].trainable
    assert model.params["trained/kernel"].trainable
    h_ = harness(trainable_engine)
    layer = model.lower(trainable_engine)
    x = np.random.default_rng(0).standard_normal((2, 3, 3))
    grads = h_.loss_grads(layer, h_.to_native(x, "float32"), np.ones((2, 3), np.float32))
    assert sorted(grads) == ["frozen/kernel", "trained/kernel"]
    assert np.all(grads["frozen/kernel"] == 0), f"{trainable_engine}: frozen/kernel got {grads['frozen/kernel']}"
    # the loss does reach a trainable kernel (so the zero above is freezing, not a loss that never flows)
    assert float(np.max(np.abs(grads["trained/kernel"]))) > 1e-3
