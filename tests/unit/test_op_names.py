"""The op names: one list (rshop_core.ops.Op), and every place that spells them agrees with it."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

from rshop_backends.codegen import COMMON
from rshop_core import ops
from rshop_core.ops import LEAVES, OPS, Op, op_names

DOCS = Path(__file__).resolve().parents[2] / "docs"
# dropout never reaches an engine: execution plans rewrite it (a mask constant, or the identity)
REWRITTEN = {Op.DROPOUT}


def _table_ops(text: str) -> list:
    """The op names in the first column of a markdown table (``| `a`, `b` | ...``)."""
    names = []
    for line in text.splitlines():
        if line.startswith("| `"):
            names += re.findall(r"`(\w+)`", line.split("|")[1])
    return names


def test_op_constants_are_the_closed_set():
    assert set(op_names()) == set(OPS)
    assert len(op_names()) == len(set(op_names())) == 60
    for attr, value in vars(Op).items():
        if attr.isupper():
            assert value == attr.lower()
    assert LEAVES == ("input", "param", "constant")


def test_ir_doc_table_lists_every_op_once():
    text = (DOCS / "ir.md").read_text(encoding="utf-8")
    section = text[text.index("## The closed op set") :]
    names = _table_ops(section[: section.index("\n## ")])
    assert sorted(names) == sorted(op_names())


def test_ops_module_docstring_lists_every_op():
    doc = ops.__doc__
    table = doc[doc.index("==============  =======") :]
    words = set(re.findall(r"^(\w+(?:, \w+)*),?\s", table, flags=re.M))
    listed = {w for line in words for w in line.split(", ")}
    assert listed >= set(op_names()), sorted(set(op_names()) - listed)


def test_engine_emits_every_computed_op(engine):
    """Each engine's table (its own spellings over the shared ones) covers every op a plan can hold."""
    table = {**COMMON, **importlib.import_module(f"rshop_backends.{engine}.ops").EMITTERS}
    assert set(table) <= set(op_names()), sorted(set(table) - set(op_names()))
    assert set(table) == set(op_names()) - set(LEAVES) - REWRITTEN
