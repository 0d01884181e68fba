"""The type checker's setup and what typing rshop_core changed: mypy runs in `nox -s lint` and pre-commit
alike, the names mypy now sees in `functional` are exactly the ops, and a bare initializer name that needs
arguments is refused with an RshopConfigError (a raw TypeError before)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rshop_core import functional as F
from rshop_core import initializers
from rshop_core.errors import RshopConfigError
from rshop_core.ops import COMPARE, ELEMENTWISE_BINARY, ELEMENTWISE_UNARY, Op
from rshop_core.symbolic import Input

ROOT = Path(__file__).resolve().parents[2]
tomllib = pytest.importorskip("tomllib")  # Python >= 3.11 (the nox sessions' interpreter)


def _pin(text: str, package: str) -> str:
    found = re.findall(rf"\b{package}==([0-9][^\s\"']*)", text)
    assert len(found) == 1, f"expected one {package}== pin, found {found}"
    return found[0]


def test_mypy_runs_in_lint_and_pre_commit_with_the_pinned_version():
    constraints = (ROOT / "constraints.txt").read_text(encoding="utf-8")
    hook = (ROOT / ".pre-commit-config.yaml").read_text(encoding="utf-8")
    nox = (ROOT / "noxfile.py").read_text(encoding="utf-8")
    assert _pin(hook, "mypy") == _pin(constraints, "mypy")
    assert _pin(hook, "numpy") == _pin(constraints, "numpy")  # mypy reads numpy's annotations
    assert 'session.run("mypy")' in nox, "nox -s lint runs mypy with pyproject's settings, no paths of its own"
    assert re.search(r"entry:\s*mypy\s*$", hook, re.MULTILINE), "the hook runs mypy with pyproject's settings"


def test_mypy_settings_check_rshop_core_and_name_real_strict_modules():
    mypy = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["mypy"]
    assert mypy["files"] == ["src/rshop_core"]
    strict = [o for o in mypy["overrides"] if o.get("disallow_untyped_defs")]
    assert strict, "at least one module is checked with disallow_untyped_defs"
    for override in strict:
        for module in override["module"]:
            path = ROOT / "src" / Path(*module.split("."))
            assert path.with_suffix(".py").is_file() or (path / "__init__.py").is_file(), module


def test_functional_spells_out_one_function_per_elementwise_op():
    for op in ELEMENTWISE_BINARY + COMPARE + ELEMENTWISE_UNARY:
        f = getattr(F, op)
        assert f.__name__ == op and op in F.__all__
    a, b = Input((3,), name="a"), Input((3,), name="b")
    assert F.add(a, b).op == Op.ADD and F.greater(a, b).op == Op.GREATER and F.hard_sigmoid(a).op == Op.HARD_SIGMOID
    assert F.greater(a, b).dtype == "bool" and F.tanh(a).shape == (3,)


def test_bare_initializer_name_that_needs_arguments_is_a_config_error():
    with pytest.raises(RshopConfigError) as e:
        initializers.get("concatenate", "LSTMCell 'c' bias_initializer")
    msg = str(e.value)
    assert msg.startswith("LSTMCell 'c' bias_initializer: initializer 'concatenate'")
    assert "expected arguments of Concatenate, received []" in msg
    # the names that need nothing still make their initializer, and a dict with arguments still works
    assert isinstance(initializers.get("zeros"), initializers.Zeros)
    joined = initializers.get({"name": "concatenate", "parts": [[2, "zeros"], [1, "ones"]]})
    assert joined((3,), "float64").tolist() == [0.0, 0.0, 1.0]
