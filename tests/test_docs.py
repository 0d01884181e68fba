"""Every ```python block of README.md and docs/*.md runs (blocks of one file share a namespace).

A block whose first line is ``# requires: torch`` (engines, or other packages such as keras)
runs only where all of them are installed, and is reported as skipped with that reason elsewhere.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from rshop_backends import registry

ROOT = Path(__file__).resolve().parents[1]
FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"```python\n(.*?)```", re.S)


def installed(name: str) -> bool:
    """An rshop engine that is installed, or an importable package."""
    if name in registry.engines():
        return registry.info(name).installed()
    return importlib.util.find_spec(name) is not None


def blocks(path):
    return BLOCK.findall(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("path", [p for p in FILES if blocks(p)], ids=lambda p: p.name)
def test_doc_examples_run(path, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__docs__"}
    for i, src in enumerate(blocks(path)):
        first = src.splitlines()[0] if src.strip() else ""
        need = re.match(r"#\s*requires:\s*(.+)", first)
        if need:
            missing = [e.strip() for e in need.group(1).split(",") if not installed(e.strip())]
            if missing:
                pytest.skip(f"{path.name} block {i} needs {missing}, not installed in this session")
        exec(compile(src, f"{path.name}[block {i}]", "exec"), namespace)


def test_every_doc_is_linked_from_readme():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for p in sorted((ROOT / "docs").glob("*.md")):
        assert f"docs/{p.name}" in readme, f"README.md does not link docs/{p.name}"
