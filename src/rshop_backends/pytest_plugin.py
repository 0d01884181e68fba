"""The rshop pytest plugin (entry point ``pytest11``, name ``rshop``): engine selection for any test suite.

Installed with rshop, it gives every pytest run:

- the option ``--rshop-engines=numpy,torch`` (default: the ``RSHOP_TEST_ENGINES`` environment variable,
  else every installed engine, built-in and plug-in); an unknown or uninstalled name stops the run;
- the fixture ``rshop_engine``: a test taking it runs once per selected engine (ids are the names);
- the fixture ``rshop_engines``: the selected names, as a list;
- :func:`rshop_backends.testing.assert_parity` compares on the selected engines by default;
- the option ``--rshop-device=cuda`` (default: the ``RSHOP_TEST_DEVICE`` environment variable, else each
  framework's own default): each selected engine's ``testing.use_device(device)`` runs once per process
  before any test, so that layers and arrays are made on that device, with TF32 off. An engine without
  ``use_device``, or a device it cannot use, stops the run.

Tests that take a fixture named ``engine`` are NOT parametrised by this plugin (the name is too common to
claim in a user's suite); the conformance suite's conftest asks for that with :func:`parametrize_engines`.
Disable the plugin with ``-p no:rshop``.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

__all__ = [
    "ENV",
    "installed_engines",
    "parametrize_engines",
    "select_engines",
    "selected",
    "trainable",
    "ensure_registered",
    "use_device",
]

ENV = "RSHOP_TEST_ENGINES"
DEVICE_ENV = "RSHOP_TEST_DEVICE"
_selected: list[str] | None = None  # the engines of the pytest run in progress (None outside one)


def installed_engines() -> list[str]:
    """Every installed engine: the built-ins in the registry's order, then plug-ins by name."""
    from rshop_backends import registry

    known = registry.engines()
    builtin = [n for n in registry.BUILTIN if known[n].installed()]
    return builtin + sorted(n for n, e in known.items() if n not in registry.BUILTIN and e.installed())


def select_engines(raw: str | None) -> list[str]:
    """The engines named by ``raw`` (comma separated; None or empty: every installed engine), checked."""
    from rshop_backends import registry

    if not raw or not raw.strip():
        return installed_engines()
    names = list(dict.fromkeys(n.strip() for n in raw.split(",") if n.strip()))
    known = registry.engines()
    bad = [n for n in names if n not in known]
    if bad:
        raise pytest.UsageError(
            f"--rshop-engines: expected engines among {sorted(known)}, received unknown {bad}. Install the "
            "engine's package (plug-ins register in the 'rshop.engines' entry-point group) or fix the name."
        )
    missing = [n for n in names if not known[n].installed()]
    if missing:
        hints = [f'pip install "rshop[{known[n].extra}]"' for n in missing if known[n].extra]
        raise pytest.UsageError(
            f"--rshop-engines: expected installed engines, received {missing}, which are not installed. "
            f"Install them ({', '.join(hints) or 'their frameworks'}) or leave them out."
        )
    return names


def use_device(engines: list[str], device: str) -> None:
    """Put each of ``engines`` on ``device`` through its ``testing.use_device`` (a clear stop when it has none
    or refuses the device)."""
    from rshop_core.errors import RshopError

    from .conformance.runs import harness

    for name in engines:
        hook = getattr(harness(name), "use_device", None)
        if hook is None:
            raise pytest.UsageError(
                f"--rshop-device: expected engines whose testing module has use_device(device), received "
                f"{name!r}, which has none. Leave --rshop-device out, or run the other engines alone."
            )
        try:
            hook(device)
        except RshopError as e:
            raise pytest.UsageError(str(e)) from None


def selected() -> list[str] | None:
    """The engines selected for the pytest run in progress, None outside a run with this plugin."""
    return None if _selected is None else list(_selected)


def trainable(engine: str) -> bool:
    """Whether ``engine`` computes gradients: its ``testing`` module's ``GRADIENTS`` (default True)."""
    from .conformance.runs import harness

    return bool(getattr(harness(engine), "GRADIENTS", True))


def parametrize_engines(metafunc: pytest.Metafunc, names: tuple[str, ...] = ("engine", "trainable_engine")) -> None:
    """Parametrise a test's ``engine`` argument (every selected engine) and ``trainable_engine`` argument
    (the selected engines with gradients; a reasoned skip when there is none). For a conftest: the
    conformance suite's and the repository's call it."""
    engines: list[str] = metafunc.config.rshop_engines  # type: ignore[attr-defined]
    if names[0] in metafunc.fixturenames:
        metafunc.parametrize(names[0], engines)
    if len(names) > 1 and names[1] in metafunc.fixturenames:
        able: list[Any] = [e for e in engines if trainable(e)]
        if not able:  # say why instead of pytest's anonymous "empty parameter set"
            able = [
                pytest.param(
                    engines[0] if engines else "numpy",
                    marks=pytest.mark.skip(
                        reason=f"no engine under test ({', '.join(engines)}) computes gradients: gradient "
                        "tests need jax, torch, tensorflow or a plug-in engine with gradients"
                    ),
                )
            ]
        metafunc.parametrize(names[1], able)


def ensure_registered(pluginmanager: pytest.PytestPluginManager) -> None:
    """Register this plugin unless it already is (as the ``rshop`` entry point, or by a conftest):
    for a conftest's ``pytest_addoption`` where rshop runs from a source tree without its entry points."""
    import sys

    module = sys.modules[__name__]
    if not pluginmanager.is_registered(module) and not pluginmanager.is_blocked("rshop"):
        pluginmanager.register(module, "rshop")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("rshop", "rshop engines")
    group.addoption(
        "--rshop-engines",
        dest="rshop_engines",
        default=None,
        help=f"comma-separated rshop engines to test (default: ${ENV}, else every installed engine)",
    )
    group.addoption(
        "--rshop-device",
        dest="rshop_device",
        default=None,
        help=f"the device the engines under test run on, e.g. cuda, cuda:1, cpu (default: ${DEVICE_ENV}, else "
        "each framework's default); TF32 off",
    )


def pytest_configure(config: pytest.Config) -> None:
    global _selected
    raw = config.getoption("rshop_engines") or os.environ.get(ENV)
    config.rshop_engines = select_engines(raw)  # type: ignore[attr-defined]
    config.rshop_ran = set()  # type: ignore[attr-defined]
    _selected = list(config.rshop_engines)  # type: ignore[attr-defined]
    device = config.getoption("rshop_device") or os.environ.get(DEVICE_ENV) or None
    config.rshop_device = device  # type: ignore[attr-defined]
    if device:  # in every process: pytest-xdist's workers configure too
        use_device(_selected, device)


def pytest_unconfigure(config: pytest.Config) -> None:
    global _selected
    _selected = None


def pytest_report_header(config: pytest.Config) -> str:
    device = config.rshop_device or "each framework's default"  # type: ignore[attr-defined]
    return f"rshop engines under test: {', '.join(config.rshop_engines)}; device: {device}"  # type: ignore[attr-defined]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "rshop_engine" in metafunc.fixturenames:
        metafunc.parametrize("rshop_engine", metafunc.config.rshop_engines, indirect=True)  # type: ignore[attr-defined]


@pytest.fixture
def rshop_engine(request: pytest.FixtureRequest) -> str:
    """The engine this test runs on: one test per engine of ``--rshop-engines``."""
    name: str = request.param
    request.config.rshop_ran.add(name)  # type: ignore[attr-defined]
    return name


@pytest.fixture(scope="session")
def rshop_engines(pytestconfig: pytest.Config) -> list[str]:
    """The engines selected for this run (``--rshop-engines``), in order."""
    return list(pytestconfig.rshop_engines)  # type: ignore[attr-defined]
