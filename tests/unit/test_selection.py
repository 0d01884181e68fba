"""Choosing the engine: env var > set_backend > config file > automatic; clear failures."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import rshop_backends
from rshop_backends import registry, selection
from rshop_core.errors import RshopConfigError, RshopEngineError


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    monkeypatch.delenv("RSHOP_BACKEND", raising=False)
    monkeypatch.setenv("RSHOP_CONFIG", str(tmp_path / "config.json"))
    selection._reset_for_tests()
    yield tmp_path
    selection._reset_for_tests()


def test_automatic_choice_is_first_installed(fresh):
    first = next(n for n in registry.AUTO_ORDER if registry.BUILTIN[n].installed())
    assert rshop_backends.backend() == first
    assert selection.reason().startswith("automatic")


def test_precedence(fresh, monkeypatch):
    (fresh / "config.json").write_text(json.dumps({"backend": "numpy"}))
    assert rshop_backends.backend() == "numpy" and "config file" in selection.reason()
    rshop_backends.set_backend("numpy")
    assert selection.reason() == "rshop_backends.set_backend()"
    monkeypatch.setenv("RSHOP_BACKEND", "numpy")
    selection._reset_for_tests()
    assert rshop_backends.backend() == "numpy" and selection.reason() == "RSHOP_BACKEND environment variable"


def test_unknown_names_fail_listing_known(fresh, monkeypatch):
    with pytest.raises(RshopConfigError, match=r"engine: expected one of \[.*'numpy'.*\], received 'pytorch'"):
        rshop_backends.set_backend("pytorch")
    monkeypatch.setenv("RSHOP_BACKEND", "mxnet")
    with pytest.raises(RshopConfigError, match="received 'mxnet'"):
        rshop_backends.backend()


def test_conflict_with_env_is_an_error(fresh, monkeypatch):
    monkeypatch.setenv("RSHOP_BACKEND", "numpy")
    with pytest.raises(RshopConfigError, match="RSHOP_BACKEND='numpy', which takes precedence"):
        rshop_backends.set_backend("jax")


def test_frozen_after_first_default_lowering(fresh):
    from rshop_core.cells import SimpleRNNCell

    rshop_backends.set_backend("numpy")
    SimpleRNNCell(2, input_dim=2).get_layer(seed=0).lower()
    rshop_backends.set_backend("numpy")  # the same choice again is fine
    with pytest.raises(RshopConfigError, match="expected to be called before the first lowering"):
        rshop_backends.set_backend("jax")


def test_bad_config_file(fresh):
    (fresh / "config.json").write_text("{not json")
    with pytest.raises(RshopConfigError, match=r"config file .*config.json: expected JSON"):
        rshop_backends.backend()


def test_missing_engine_names_the_extra(monkeypatch):
    fake = registry.EngineInfo("torch", "rshop_backends.torch", ("no_such_module_xyz",), (), "torch")
    monkeypatch.setitem(registry.BUILTIN, "torch", fake)
    with pytest.raises(RshopEngineError, match=r'Install it with: pip install "rshop\[torch\]"'):
        registry.load("torch")


def test_importing_rshop_imports_no_framework():
    code = (
        "import sys, rshop_core, rshop_backends, rshop_backends.numpy; "
        "from rshop_core.cells import LSTMCell; LSTMCell(3, input_dim=2).get_layer(seed=0).lower('numpy'); "
        "print([m for m in ('jax', 'torch', 'tensorflow', 'keras') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_rshop_info_cli():
    out = subprocess.run(
        [sys.executable, "-m", "rshop_backends.cli", "info"],
        capture_output=True,
        text=True,
        check=True,
        env={**__import__("os").environ, "RSHOP_BACKEND": "numpy"},
    )
    assert "numpy       installed" in out.stdout
    assert "active engine: numpy (RSHOP_BACKEND environment variable)" in out.stdout
