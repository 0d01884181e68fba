"""Every ```python block of README.md and docs/*.md runs, one test per block (see tests/doc_blocks.py).

Blocks of one file share a namespace and run in order. A block whose first line is ``# requires: torch``
(engines, or other packages such as keras) is skipped alone where one of them is missing; a later block
that reads a name such a block binds is skipped with a reason naming it; every other block still runs.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import doc_blocks

ROOT = Path(__file__).resolve().parents[1]
FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
CASES = [(p, i) for p in FILES for i in range(len(doc_blocks.blocks(p)))]


@pytest.fixture(scope="module")
def doc_outcomes(tmp_path_factory):
    """``outcomes(path)``: what became of each block of one file, run once for all of its tests."""
    runs: dict = {}

    def outcomes(path):
        if path not in runs:
            runs[path] = doc_blocks.run_blocks(path.name, doc_blocks.blocks(path), tmp_path_factory.mktemp(path.stem))
        return runs[path]

    return outcomes


@pytest.mark.parametrize(("path", "block"), CASES, ids=[f"{p.name}[{i}]" for p, i in CASES])
def test_doc_block_runs(doc_outcomes, path, block):
    outcome = doc_outcomes(path)[block]
    if outcome.status == "skipped":
        pytest.skip(outcome.reason)
    if outcome.error is not None:
        raise outcome.error
    assert outcome.status == "passed"


def test_every_doc_is_linked_from_readme():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for p in sorted((ROOT / "docs").glob("*.md")):
        assert f"docs/{p.name}" in readme, f"README.md does not link docs/{p.name}"
