"""Project files agree with each other: the pre-commit lint is `nox -s lint`, typing markers ship, one version."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
tomllib = pytest.importorskip("tomllib")  # Python >= 3.11 (the nox sessions' interpreter)


def _pin(text: str, package: str) -> str:
    found = re.findall(rf"\b{package}==([0-9][^\s\"']*)", text)
    assert len(found) == 1, f"expected one {package}== pin, found {found}"
    return found[0]


def test_pre_commit_runs_the_lint_session():
    hook = (ROOT / ".pre-commit-config.yaml").read_text(encoding="utf-8")
    nox = (ROOT / "noxfile.py").read_text(encoding="utf-8")
    pinned = _pin((ROOT / "constraints.txt").read_text(encoding="utf-8"), "ruff")
    assert set(re.findall(r"\bruff==([0-9][^\s\"']*)", hook)) == {pinned}
    nox_runs = [re.findall(r'"([^"]+)"', args) for args in re.findall(r'session\.run\("ruff", (.*?)\)', nox)]
    hook_runs = [entry.split() for entry in re.findall(r"entry:\s*ruff (.+)", hook)]
    assert len(nox_runs) == 2, "nox -s lint runs ruff check and ruff format --check"
    assert hook_runs == nox_runs, f"pre-commit runs ruff {hook_runs}, nox -s lint runs ruff {nox_runs}"
    assert re.search(r"pass_filenames:\s*false", hook), "the hook must lint the same paths, not staged files only"


def test_typing_markers_ship_in_the_wheel():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    data = project["tool"]["setuptools"]["package-data"]
    for package in ("rshop_core", "rshop_backends"):
        assert (ROOT / "src" / package / "py.typed").is_file()
        assert "py.typed" in data[package]


def test_version_has_one_source():
    import rshop_core

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "rshop_core.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+", rshop_core.__version__)


def test_mypy_runs_in_lint_and_pre_commit_with_the_pinned_version():
    constraints = (ROOT / "constraints.txt").read_text(encoding="utf-8")
    hook = (ROOT / ".pre-commit-config.yaml").read_text(encoding="utf-8")
    nox = (ROOT / "noxfile.py").read_text(encoding="utf-8")
    assert _pin(hook, "mypy") == _pin(constraints, "mypy")
    assert _pin(hook, "numpy") == _pin(constraints, "numpy")  # mypy reads numpy's annotations
    assert 'session.run("mypy")' in nox, "nox -s lint runs mypy with pyproject's settings, no paths of its own"
    assert re.search(r"entry:\s*mypy\s*$", hook, re.MULTILINE), "the hook runs mypy with pyproject's settings"


STRICT = ("disallow_untyped_defs", "disallow_incomplete_defs", "check_untyped_defs")


def test_mypy_is_strict_on_rshop_core_and_relaxes_only_real_modules():
    mypy = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["mypy"]
    assert mypy["files"] == ["src/rshop_core"]
    assert all(mypy.get(flag) is True for flag in STRICT), "every module is strict unless an override relaxes it"
    relaxed = [o for o in mypy["overrides"] if any(o.get(flag) is False for flag in STRICT)]
    modules = [m for o in relaxed for m in o["module"]]
    # the exceptions stay few, and each names a module that exists (a stale name would relax nothing)
    core = [m for m in modules if m.startswith("rshop_core")]
    assert len(core) <= 2, f"rshop_core modules not strict: {core}"
    for module in modules:
        path = ROOT / "src" / Path(*module.removesuffix(".*").split("."))
        assert path.with_suffix(".py").is_file() or (path / "__init__.py").is_file(), module
