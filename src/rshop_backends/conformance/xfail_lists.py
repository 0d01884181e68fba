"""Known engine gaps: one xfail list per engine, applied as strict xfails to the conformance tests.

A list is a text file, one gap a line: ``<regular expression searched in the pytest node id>  # reason``
(blank lines and lines starting with ``#`` are comments). Write patterns from the test file's name on
(``test_forward.py::test_float64_lowering``) so they match wherever the suite runs from. Every entry is
a strict xfail: when the gap is fixed the run fails until the line is removed.

Where an engine's list is: the file its ``testing`` module names in ``XFAILS`` (a plug-in engine ships its
own), else, for a built-in engine, ``xfails/<engine>.txt`` in this package.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

__all__ = ["load", "mark", "parse", "source"]


def source(engine: str) -> Any:
    """The engine's xfail file (a path or a package resource), None when it has none."""
    from rshop_backends import registry

    from .runs import harness

    declared = getattr(harness(engine), "XFAILS", None)
    if declared is not None:
        return Path(declared)
    if engine in registry.BUILTIN:
        return resources.files(__package__).joinpath("xfails", f"{engine}.txt")
    return None


def parse(text: str, where: str) -> list[tuple[re.Pattern[str], str]]:
    """``(pattern, reason)`` pairs of an xfail list's ``text``; ``where`` names it in errors."""
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        pattern, _, reason = line.partition("#")
        if not reason.strip() or not pattern.strip():
            raise pytest.UsageError(
                f"{where}, line {number}: expected '<regex on the test id>  # reason', received {line!r}. "
                "Every known gap needs a pattern and a reason."
            )
        try:
            out.append((re.compile(pattern.strip()), reason.strip()))
        except re.error as e:
            raise pytest.UsageError(
                f"{where}, line {number}: expected a regular expression, received {line!r} ({e})."
            ) from None
    return out


def load(engine: str) -> list[tuple[re.Pattern[str], str]]:
    """The parsed xfail list of ``engine`` (empty when it has none)."""
    file = source(engine)
    if file is None or not file.is_file():
        if isinstance(file, Path):  # declared by the engine but missing: say so rather than test without it
            raise pytest.UsageError(f"engine {engine!r}: expected its XFAILS file {file} to exist, received none.")
        return []
    return parse(file.read_text(encoding="utf-8"), str(file))


def mark(engines: Iterable[str], items: list[pytest.Item]) -> None:
    """Mark every test of ``items`` run on an engine (``engine`` or ``trainable_engine`` argument) whose node id
    matches one of that engine's entries as a strict xfail giving the reason."""
    table = {e: load(e) for e in engines}
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is None:
            continue
        engine = callspec.params.get("engine") or callspec.params.get("trainable_engine")
        for pattern, reason in table.get(engine, ()):
            if pattern.search(item.nodeid):
                item.add_marker(pytest.mark.xfail(reason=f"{engine}: {reason}", strict=True))
