"""What every ported RecurrentShop example checks: an engine's results equal the numpy float64 reference
(outputs and final states), and autodiff gradients equal float64 central differences."""

from __future__ import annotations

import numpy as np

from conformance.conftest import as_tuple, assert_close, central_differences, harness, native, reference, run
from conformance.tolerances import FORWARD_ATOL, GRAD_RTOL


def agrees(model, engine, x, what, **call):
    """Run ``model`` on ``engine`` (float32) and on numpy float64; assert they agree; the engine's results."""
    want = reference(model, x, **call)
    got = run(model, engine, x, **call)
    assert_close(got, want, FORWARD_ATOL["float32"], f"{engine}/{what}")
    return got


def gradients_agree(model, engine, x, what, seed=0, **call):
    """d sum(y * w) / d every parameter on ``engine`` equals central differences on numpy float64."""
    fd_layer = model.lower("numpy", "float64")
    y = as_tuple(fd_layer(x, **call))[0]
    w_out = np.random.default_rng(seed).standard_normal(y.shape)
    want = central_differences(fd_layer.params, lambda: float(np.sum(as_tuple(fd_layer(x, **call))[0] * w_out)))
    h = harness(engine)
    conv = lambda v: native(h, v, "float32") if isinstance(v, np.ndarray) else v
    kwargs = {k: [conv(a) for a in v] if isinstance(v, list) else conv(v) for k, v in call.items()}
    got = h.loss_grads(model.lower(engine), native(h, x, "float32"), w_out.astype(np.float32), **kwargs)
    assert sorted(got) == sorted(want)
    scale = max(1.0, max(float(np.max(np.abs(g))) for g in want.values()))
    for name in want:
        err = float(np.max(np.abs(got[name].astype(np.float64) - want[name])))
        assert err <= GRAD_RTOL["float32"] * scale, f"{engine}/{what}: d/d {name} off by {err:.3g}"
