"""A third-party engine certifies itself from installed wheels, with no rshop checkout.

Builds the rshop wheel and the tiny plug-in engine of ``tests/data/plugin_engine`` ("twin": the numpy
engine under another name, float32 only, registered through the ``rshop.engines`` entry point), installs
both into a fresh venv, and runs ``pytest --pyargs rshop_backends.conformance`` there for the plug-in and
for numpy. The venv sees numpy and pytest (and pytest's requirements) through one ``.pth`` file naming a
folder of links to exactly those distributions, taken from the running environment: nothing is downloaded
and no framework is visible. Slow (wheels, venv, two suite runs): marked ``certify``, run by ``nox -s certify``.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

pytestmark = pytest.mark.certify

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = ROOT / "tests" / "data" / "plugin_engine"
DEPENDENCIES = ("numpy", "pytest")  # the shipped suite's own needs; the closure of their requirements is linked


def _closure(names: tuple[str, ...]) -> list[importlib.metadata.Distribution]:
    """The distributions of ``names`` and of what they require (in this Python, without extras)."""
    seen: dict[str, importlib.metadata.Distribution] = {}
    todo = list(names)
    while todo:
        name = todo.pop()
        dist = importlib.metadata.distribution(name)
        key = dist.metadata["Name"].lower().replace("_", "-")
        if key in seen:
            continue
        seen[key] = dist
        for line in dist.requires or []:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return list(seen.values())


def _link_dependencies(folder: Path) -> None:
    """A folder holding links to the top-level modules and metadata of :data:`DEPENDENCIES`' closure."""
    folder.mkdir()
    for dist in _closure(DEPENDENCIES):
        base = Path(str(dist.locate_file("")))
        tops = {Path(str(f)).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
        for top in sorted(tops - {"__pycache__"}):
            if (base / top).exists() and not (folder / top).exists():
                (folder / top).symlink_to(base / top)


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: int = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def certify_venv(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, str]]:
    """(venv python, a working folder outside any checkout, the environment to run in)."""
    tmp = tmp_path_factory.mktemp("certify")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "RSHOP_TEST_ENGINES", "RSHOP_BACKEND")}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    source = tmp / "rshop-src"  # a copy: building in the checkout would leave build/ and egg-info there
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    plugin = tmp / "plugin-src"
    shutil.copytree(PLUGIN, plugin, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build"))
    wheels = tmp / "wheels"
    for project in (source, plugin):
        built = _run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels), "."],
            project,
            env,
        )
        assert built.returncode == 0, built.stdout + built.stderr
    venv = tmp / "venv"
    made = _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp, env)
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = Path(_run([str(python), "-c", purelib], tmp, env).stdout.strip())
    _link_dependencies(tmp / "deps")
    (site / "rshop_test_dependencies.pth").write_text(str(tmp / "deps") + "\n")
    installed = _run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-index", "--no-deps"]
        + [str(w) for w in sorted(wheels.glob("*.whl"))],
        tmp,
        env,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return python, tmp, env


def test_venv_has_only_the_wheels(certify_venv: tuple[Path, Path, dict[str, str]]) -> None:
    """The venv imports rshop from its own site-packages, knows the plug-in, and sees no framework."""
    python, tmp, env = certify_venv
    probe = (
        "import importlib.util, rshop_backends, rshop_backends.conformance as c; "
        "print(rshop_backends.__file__); print(sorted(rshop_backends.engines().items())); "
        "print([m for m in ('jax', 'torch', 'tensorflow') if importlib.util.find_spec(m)])"
    )
    out = _run([str(python), "-c", probe], tmp, env)
    assert out.returncode == 0, out.stderr
    where, engines, frameworks = out.stdout.splitlines()
    assert where.startswith(str(tmp / "venv")), where
    assert engines == str([("jax", False), ("numpy", True), ("tensorflow", False), ("torch", False), ("twin", True)]), (
        engines
    )
    assert frameworks == "[]"


@pytest.mark.parametrize("certified", ["twin", "numpy"])
def test_shipped_suite_certifies(certify_venv: tuple[Path, Path, dict[str, str]], certified: str) -> None:
    """``pytest --pyargs rshop_backends.conformance --rshop-engines=<engine>`` passes from the venv; for the
    plug-in, its own xfail list (``XFAILS`` of its testing module) turns its one declared gap into an xfail."""
    python, tmp, env = certify_venv
    cmd = [str(python), "-m", "pytest", "--pyargs", "rshop_backends.conformance", f"--rshop-engines={certified}"]
    out = _run([*cmd, "-q", "-p", "no:cacheprovider", "-W", "error"], tmp, env)
    tail = out.stdout[-3000:] + out.stderr[-2000:]
    assert out.returncode == 0, tail
    summary = out.stdout.strip().splitlines()[-1]
    passed = int(re.search(r"(\d+) passed", summary).group(1))  # type: ignore[union-attr]
    assert passed > 100, summary
    assert not re.search(r"\d+ (failed|errors?|xpassed)\b", summary), summary
    xfailed = re.search(r"(\d+) xfailed", summary)
    if certified == "twin":
        assert xfailed and xfailed.group(1) == "1", summary  # test_float64_lowering: twin is float32 only
    else:
        assert xfailed is None, summary  # numpy's list is empty
