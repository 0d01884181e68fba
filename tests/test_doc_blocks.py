"""The doc-block runner of tests/test_docs.py skips a block alone when its requirement is missing.

``installed()`` is monkeypatched so that an engine looks missing, as in a nox session that holds one engine.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest

import doc_blocks

ROOT = Path(__file__).resolve().parents[1]


def pretend_missing(monkeypatch, *names):
    really = doc_blocks.installed
    monkeypatch.setattr(doc_blocks, "installed", lambda name: name not in names and really(name))


@pytest.fixture
def torch_missing(monkeypatch):
    pretend_missing(monkeypatch, "torch")


def test_missing_requirement_skips_that_block_and_its_dependants_only(torch_missing, tmp_path):
    sources = [
        "a = 1\n",
        "# requires: torch\nt = a + 1\nshared = 'torch'\n",  # skipped: torch is missing
        "u = t * 2\n",  # reads t: skipped, naming t and block 1
        "b = a + 10\nassert b == 11\n",  # independent: runs
        "# requires: numpy\nassert b == 11\n",  # its requirement is there: runs
        "shared = 'numpy'\nv = shared\n",  # binds shared itself first: runs
        "w = shared + '!'\nassert w == 'numpy!'\n",  # shared was rebound by a block that ran: runs
        "raise ValueError('broken block')\nlate = 1\n",  # fails, reported on its own
        "print(late)\n",  # reads what the failed block would bind
        "assert a == 1 and 'u' not in globals()\n",  # still runs after a failure
    ]
    out = doc_blocks.run_blocks("demo.md", sources, tmp_path)
    assert [o.status for o in out] == [
        "passed",
        "skipped",
        "skipped",
        "passed",
        "passed",
        "passed",
        "passed",
        "failed",
        "skipped",
        "passed",
    ]
    assert out[1].reason == "demo.md block 1 needs ['torch'], not installed in this session"
    assert out[2].reason == "demo.md block 2 uses 't', which block 1 binds and it was skipped"
    assert isinstance(out[7].error, ValueError) and str(out[7].error) == "broken block"
    assert out[8].reason == "demo.md block 8 uses 'late', which block 7 binds and it was failed"


def test_rebinding_a_name_reads_it_first(torch_missing, tmp_path):
    """``x = f(x)`` reads ``x`` from an earlier block, so a skipped earlier binding skips it too."""
    sources = ["# requires: torch\nx = 1\n", "x = x + 1\n", "def f(x):\n    return [x for x in range(x)]\n"]
    out = doc_blocks.run_blocks("demo.md", sources, tmp_path)
    assert [o.status for o in out] == ["skipped", "skipped", "passed"]
    assert out[1].reason == "demo.md block 1 uses 'x', which block 0 binds and it was skipped"


def test_guide_runs_past_its_torch_blocks_without_torch(monkeypatch, tmp_path):
    """docs/guide.md with only numpy: its torch blocks are skipped, numpy blocks after them still run."""
    pretend_missing(monkeypatch, "torch", "jax", "tensorflow")
    sources = doc_blocks.blocks(ROOT / "docs" / "guide.md")
    needs_torch = [i for i, s in enumerate(sources) if "torch" in doc_blocks.requirements(s)]
    assert needs_torch, "docs/guide.md has no '# requires: torch' block any more; pick another doc"
    with contextlib.redirect_stdout(io.StringIO()):
        out = doc_blocks.run_blocks("guide.md", sources, tmp_path)
    assert [o.error for o in out if o.status == "failed"] == []
    assert all(out[i].status == "skipped" for i in needs_torch)
    later = [i for i in range(needs_torch[0] + 1, len(out)) if out[i].status == "passed"]
    assert later, f"no block after block {needs_torch[0]} of guide.md ran: {[o.status for o in out]}"
