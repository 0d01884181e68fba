"""The conformance plugin: engine harnesses, reference runs and per-engine xfail lists.

A third-party engine certifies itself by installing its package (entry point
``rshop.engines``, with a ``testing`` module like the built-ins') and running
``pytest tests/conformance --engines=<name>``.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import numpy as np
import pytest

XFAIL_DIR = Path(__file__).parent / "xfails"


def load_xfails(engine: str) -> list:
    """``(pattern, reason)`` pairs from ``xfails/<engine>.txt``: ``<regex on the test id>  # reason``."""
    path = XFAIL_DIR / f"{engine}.txt"
    out = []
    if path.is_file():
        for line in path.read_text().splitlines():
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            pattern, _, reason = line.partition("#")
            if not reason.strip():
                raise pytest.UsageError(f"{path}: every xfail needs a reason after '#': {line!r}")
            out.append((re.compile(pattern.strip()), reason.strip()))
    return out


def pytest_collection_modifyitems(config, items):
    table = {e: load_xfails(e) for e in config.rshop_engines}
    for item in items:
        callspec = getattr(item, "callspec", None)
        engine = callspec and (callspec.params.get("engine") or callspec.params.get("trainable_engine"))
        for pattern, reason in table.get(engine, ()):
            if pattern.search(item.nodeid):
                item.add_marker(pytest.mark.xfail(reason=f"{engine}: {reason}", strict=True))


def only_engine(request, name: str, what: str) -> str:
    """For tests of one engine's own behaviour: skip (saying why) unless ``name`` is under test,
    and record that it ran. ``what``: what the tests cover, for the skip reason."""
    if name not in request.config.rshop_engines:
        pytest.skip(f"{what} is the {name} engine's: {name} is not among the engines under test")
    request.config.rshop_ran.add(name)
    return name


def harness(engine: str):
    """The engine's ``testing`` module: ``to_native``, ``to_numpy``, ``loss_grads``."""
    from rshop_backends import registry

    registry.load(engine)
    return importlib.import_module(registry.info(engine).module + ".testing")


def as_tuple(result):
    return result if isinstance(result, tuple) else (result,)


def native(h, a, dtype):
    """A numpy argument as the engine's array: floats in ``dtype``, masks bool, lengths int32."""
    a = np.asarray(a)
    return h.to_native(a, "bool" if a.dtype == bool else "int32" if a.dtype.kind in "iu" else dtype)


def run(model, engine, x, dtype="float32", initial_state=None, constants=None, layer=None, **kwargs):
    """Run ``model`` on ``engine`` with numpy inputs (any call keyword too); numpy results as a tuple.

    ``training`` is passed explicitly (default False): a torch layer would otherwise follow its
    module mode, and a new ``nn.Module`` is in train mode."""
    h = harness(engine)
    layer = layer or model.lower(engine, dtype)
    conv = lambda v: None if v is None else [native(h, a, dtype) for a in v]
    kwargs = {k: native(h, v, dtype) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    kwargs.setdefault("training", False)
    out = layer(native(h, x, dtype), initial_state=conv(initial_state), constants=conv(constants), **kwargs)
    return tuple(h.to_numpy(o) for o in as_tuple(out))


def reference(model, x, initial_state=None, constants=None, **kwargs):
    """The numpy float64 reference run."""
    return run(model, "numpy", x, "float64", initial_state, constants, **kwargs)


@pytest.fixture(scope="module")
def layers(models):
    """``layers(name, engine)``: the module's ``models[name]`` lowered for ``engine``, once per module, so
    that its tests share one compile (a module using it defines a module-scoped ``models`` fixture)."""
    cache: dict = {}

    def get(name, engine):
        if (name, engine) not in cache:
            cache[name, engine] = models[name].lower(engine)
        return cache[name, engine]

    return get


def central_differences(params: dict, loss) -> dict:
    """d loss / d p for every entry of every float64 array in ``params`` (perturbed in place): the
    package's own (``rshop_backends.parity``, which ``compare(grads=True)`` uses)."""
    from rshop_backends.parity import central_differences as package_central_differences

    return package_central_differences(params, loss)


def assert_close(got, want, atol, what):
    assert len(got) == len(want), f"{what}: {len(got)} results, expected {len(want)}"
    for i, (g, w) in enumerate(zip(got, want)):
        assert g.shape == w.shape, f"{what} result #{i}: shape {g.shape}, expected {w.shape}"
        err = float(np.max(np.abs(g.astype(np.float64) - w))) if g.size else 0.0
        assert err <= atol, f"{what} result #{i}: max abs error {err:.3g} > {atol:g}"
