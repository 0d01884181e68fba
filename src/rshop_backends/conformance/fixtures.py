"""Fixtures of the conformance suite, imported by its conftest (and by the repository's)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest

__all__ = ["layers", "only_engine", "record_engine", "strict_frameworks"]


@pytest.fixture(scope="module")
def layers(models: dict[str, Any]) -> Callable[[str, str], Any]:
    """``layers(name, engine)``: the module's ``models[name]`` lowered for ``engine``, once per module, so
    that its tests share one compile (a module using it defines a module-scoped ``models`` fixture)."""
    cache: dict[tuple[str, str], Any] = {}

    def get(name: str, engine: str) -> Any:
        if (name, engine) not in cache:
            cache[name, engine] = models[name].lower(engine)
        return cache[name, engine]

    return get


def only_engine(request: pytest.FixtureRequest, name: str, what: str) -> str:
    """For tests of one engine's own behaviour: skip (saying why) unless ``name`` is under test,
    and record that it ran. ``what``: what the tests cover, for the skip reason."""
    if name not in request.config.rshop_engines:  # type: ignore[attr-defined]
        pytest.skip(f"{what} is the {name} engine's: {name} is not among the engines under test")
    request.config.rshop_ran.add(name)  # type: ignore[attr-defined]
    return name


@pytest.fixture(autouse=True)
def record_engine(request: pytest.FixtureRequest) -> Iterator[None]:
    """Record the engine each test ran on (``config.rshop_ran``), for a run's own checks."""
    for key in ("engine", "trainable_engine"):
        if key in request.fixturenames:
            request.config.rshop_ran.add(request.getfixturevalue(key))  # type: ignore[attr-defined]
    yield


@pytest.fixture(autouse=True)
def strict_frameworks() -> Iterator[None]:
    """Comparable numbers across engines: no TF32 on torch."""
    if "torch" in sys.modules:
        import torch

        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    yield
