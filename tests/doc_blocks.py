"""Run the ```python blocks of a Markdown file in order, in one shared namespace, block by block.

A block whose first line is ``# requires: torch`` (engines, or other packages such as keras) runs
only where all of them are installed; elsewhere it is skipped ALONE, and the blocks after it still
run. Because blocks share a namespace, a later block that reads a name which a skipped (or failed)
block would have bound cannot run either (the name is missing, or holds an older value): it is
skipped too, and its reason names the name and the block it needed. Names are found statically
(``ast``), so a block that reads nothing from a skipped one still runs.
"""

from __future__ import annotations

import ast
import builtins
import importlib.util
import os
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

from rshop_backends import registry

BLOCK = re.compile(r"```python\n(.*?)```", re.S)
REQUIRES = re.compile(r"#\s*requires:\s*(.+)")


def installed(name: str) -> bool:
    """An rshop engine that is installed, or an importable package."""
    if name in registry.engines():
        return registry.info(name).installed()
    return importlib.util.find_spec(name) is not None


def blocks(path: Path) -> list[str]:
    """The file's python blocks, each dedented (a block may sit indented inside a list item)."""
    return [textwrap.dedent(b) for b in BLOCK.findall(path.read_text(encoding="utf-8"))]


def requirements(src: str) -> list[str]:
    first = src.splitlines()[0] if src.strip() else ""
    need = REQUIRES.match(first)
    return [e.strip() for e in need.group(1).split(",")] if need else []


def names_bound(tree: ast.AST) -> set[str]:
    """Every name a block binds (assignments, imports, defs, classes, loop targets), not arguments
    or comprehension targets, which never reach the shared namespace."""
    bound = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            bound.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
    for comp in ast.walk(tree):
        if isinstance(comp, ast.comprehension):
            bound.difference_update(n.id for n in ast.walk(comp.target) if isinstance(n, ast.Name))
    return bound


def names_read(tree: ast.AST) -> set[str]:
    """Every name a block reads before (or without) binding it, so it must come from an earlier block.

    A name bound on a line before its first read is the block's own; ``x = f(x)`` reads ``x`` first.
    Function arguments and comprehension targets are always the block's own.
    """
    local = {n.arg for n in ast.walk(tree) if isinstance(n, ast.arg)}
    for comp in ast.walk(tree):
        if isinstance(comp, ast.comprehension):
            local.update(n.id for n in ast.walk(comp.target) if isinstance(n, ast.Name))
    first_store: dict[str, int] = {}
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            first_store[node.name] = min(first_store.get(node.name, node.lineno), node.lineno)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for a in node.names:
                k = (a.asname or a.name).split(".")[0]
                first_store[k] = min(first_store.get(k, node.lineno), node.lineno)
        elif isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            first_store[node.id] = min(first_store.get(node.id, node.lineno), node.lineno)
    read = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Name)
            and isinstance(node.ctx, ast.Load)
            and node.id not in local
            and node.lineno <= first_store.get(node.id, node.lineno)
        ):
            read.add(node.id)
    return read - set(dir(builtins))


@dataclass
class Outcome:
    """What became of one block: ``status`` is "passed", "skipped" (with ``reason``) or "failed"."""

    status: str
    reason: str = ""
    error: BaseException | None = None


def run_blocks(name: str, sources: list[str], workdir: Path) -> list[Outcome]:
    """Run ``sources`` (the blocks of the file ``name``) in order inside ``workdir``; one Outcome per block."""
    namespace: dict = {"__name__": "__docs__"}
    lost: dict[str, str] = {}  # a name a skipped or failed block would have (re)bound -> why it is not usable
    outcomes = []
    cwd = os.getcwd()
    os.chdir(workdir)
    try:
        for i, src in enumerate(sources):
            tree = ast.parse(src, f"{name}[block {i}]")
            missing = [e for e in requirements(src) if not installed(e)]
            needs = sorted(n for n in names_read(tree) if n in lost)
            if missing:
                outcome = Outcome("skipped", f"{name} block {i} needs {missing}, not installed in this session")
            elif needs:
                outcome = Outcome("skipped", f"{name} block {i} uses {needs[0]!r}, which {lost[needs[0]]}")
            else:
                try:
                    exec(compile(tree, f"{name}[block {i}]", "exec"), namespace)
                    outcome = Outcome("passed")
                except Exception as e:  # reported by this block's own test; the blocks after it go on
                    outcome = Outcome("failed", error=e)
            bound = names_bound(tree)
            if outcome.status == "passed":
                for n in bound:
                    lost.pop(n, None)
            else:
                lost.update(dict.fromkeys(bound, f"block {i} binds and it was {outcome.status}"))
            outcomes.append(outcome)
    finally:
        os.chdir(cwd)
    return outcomes
