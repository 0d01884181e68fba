"""Running a model on an engine and comparing it with the numpy float64 reference: the helpers every
conformance test uses. Arguments and results are numpy arrays, so one test body serves every engine.

An engine is reached through its ``testing`` module (``<engine module>.testing``: ``to_native``,
``to_numpy``, ``float64_scope``, ``loss_grads``; see docs/engines.md, "Certify your engine").
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import numpy as np

# one implementation each: compare() converts its inputs and takes its reference gradients with them
from rshop_backends.parity import as_tuple, central_differences, native

__all__ = ["as_tuple", "assert_close", "central_differences", "harness", "native", "reference", "run"]


def harness(engine: str) -> ModuleType:
    """The engine's ``testing`` module: ``to_native``, ``to_numpy``, ``float64_scope``, ``loss_grads``."""
    from rshop_backends import registry

    registry.load(engine)
    return importlib.import_module(registry.info(engine).module + ".testing")


def run(
    model: Any,
    engine: str,
    x: np.ndarray,
    dtype: str = "float32",
    initial_state: Sequence[np.ndarray] | None = None,
    constants: Sequence[np.ndarray] | None = None,
    layer: Any = None,
    **kwargs: Any,
) -> tuple[np.ndarray, ...]:
    """Run ``model`` on ``engine`` with numpy inputs (any call keyword too); numpy results as a tuple.

    ``layer``: an already lowered ``model`` to reuse (one compile for several calls). ``training`` is
    passed explicitly (default False): a torch layer would otherwise follow its module mode, and a new
    ``nn.Module`` is in train mode."""
    h = harness(engine)
    layer = layer or model.lower(engine, dtype)

    def conv(v: Sequence[np.ndarray] | None) -> list[Any] | None:
        return None if v is None else [native(h, a, dtype) for a in v]

    kwargs = {k: native(h, v, dtype) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    kwargs.setdefault("training", False)
    out = layer(native(h, x, dtype), initial_state=conv(initial_state), constants=conv(constants), **kwargs)
    return tuple(h.to_numpy(o) for o in as_tuple(out))


def reference(
    model: Any,
    x: np.ndarray,
    initial_state: Sequence[np.ndarray] | None = None,
    constants: Sequence[np.ndarray] | None = None,
    **kwargs: Any,
) -> tuple[np.ndarray, ...]:
    """The numpy float64 reference run of ``model`` (same arguments as :func:`run`)."""
    return run(model, "numpy", x, "float64", initial_state, constants, **kwargs)


def assert_close(got: Sequence[np.ndarray], want: Sequence[np.ndarray], atol: float, what: str) -> None:
    """Same number of results, same shapes, and every element within ``atol`` (``what`` names the comparison)."""
    assert len(got) == len(want), f"{what}: {len(got)} results, expected {len(want)}"
    for i, (g, w) in enumerate(zip(got, want)):
        assert g.shape == w.shape, f"{what} result #{i}: shape {g.shape}, expected {w.shape}"
        err = float(np.max(np.abs(g.astype(np.float64) - w))) if g.size else 0.0
        assert err <= atol, f"{what} result #{i}: max abs error {err:.3g} > {atol:g}"
