"""The module layering of rshop_core, read from the source (ast), not from what happens to be imported.

The rules (docs/ir.md, "Module layering"):

1. rshop_core never imports rshop_backends, except ``from rshop_backends import lower`` inside a
   method named ``lower`` (the model kinds' ``lower()``), imported when called.
2. rshop_core imports no framework (jax, torch, tensorflow, keras) at module level; the converters
   (rshop_core.convert) import theirs inside the functions that need them.
3. The IR modules import only IR modules, even inside functions: the IR never reaches the frontend.
4. Module-level imports inside rshop_core form no cycle; a convenience method (``model.save`` ->
   serialization) may import another rshop_core module inside its body, and an annotation may name a
   class of a module imported under ``if TYPE_CHECKING:`` (never run, so never a cycle; rules 1 to 3 still
   apply to those imports).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import rshop_core

ROOT = Path(rshop_core.__file__).parent
FRAMEWORKS = ("jax", "torch", "tensorflow", "keras")
# the IR: types, the closed op set, step graphs and their verification, specs of parameters and states
IR = {
    "rshop_core.errors",
    "rshop_core.dtypes",
    "rshop_core.types",
    "rshop_core.limits",
    "rshop_core.ops",
    "rshop_core.custom_registry",
    "rshop_core.graph",
    "rshop_core.specs",
    "rshop_core.initializers",
    "rshop_core.regularizers",
    "rshop_core.constraints",
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def _is_type_checking(node: ast.AST) -> bool:
    """``if TYPE_CHECKING:`` (or ``typing.TYPE_CHECKING``): a block only a type checker reads."""
    if not isinstance(node, ast.If):
        return False
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(path: Path) -> list:
    """``(imported module, top level?, enclosing function name, imported names)`` of every import; an
    import under ``if TYPE_CHECKING:`` is not top level (it never runs)."""
    name = _module_name(path)
    package = name if _is_package(path) else name.rpartition(".")[0]
    found = []

    def visit(node, func, typing_only=False):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                visit(child, child.name)
                continue
            if _is_type_checking(child):  # its body only; an ``else:`` branch runs
                for stmt in child.body:
                    visit(ast.Module(body=[stmt], type_ignores=[]), func, typing_only=True)
                for stmt in child.orelse:
                    visit(ast.Module(body=[stmt], type_ignores=[]), func, typing_only)
                continue
            top = func is None and not typing_only
            if isinstance(child, ast.Import):
                found.extend((a.name, top, func, ()) for a in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module != "__future__":
                if child.level:
                    base = package.split(".")
                    base = base[: len(base) - (child.level - 1)]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module
                names = tuple(a.name for a in child.names)
                if child.module is None:  # from . import a, b: each may be a submodule
                    for a in names:
                        sub = f"{target}.{a}"
                        is_module = (ROOT.parent / Path(*sub.split("."))).is_dir() or (
                            ROOT.parent / Path(*sub.split("."))
                        ).with_suffix(".py").is_file()
                        found.append((sub if is_module else target, top, func, (a,)))
                else:
                    found.append((target, top, func, names))
            visit(child, func, typing_only)

    visit(ast.parse(path.read_text(encoding="utf-8")), None)
    return found


MODULES = {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}
IMPORTS = {m: _imports(p) for m, p in MODULES.items()}


def _top(target: str) -> str:
    return target.split(".")[0]


def test_the_scan_sees_every_module_and_known_edges():
    """The parser reads what the files say (a rule checked on nothing cannot fail)."""
    assert {"rshop_core.graph", "rshop_core.tracing", "rshop_core.model", "rshop_core.convert.keras_step"} <= set(
        MODULES
    )
    assert ("rshop_core.symbolic", True, None, ("Tensor",)) in IMPORTS["rshop_core.tracing"]
    assert ("rshop_backends", False, "lower", ("lower",)) in IMPORTS["rshop_core.lowerable"]
    assert any(t == "rshop_core.functional" and top for t, top, _, _ in IMPORTS["rshop_core.execution"])
    assert any(t == "keras" and not top for t, top, _, _ in IMPORTS["rshop_core.convert.keras_step"])
    # an import only the type checker reads is seen, and is not a module-level edge
    assert ("rshop_core.layers.base", False, None, ("Layer",)) in IMPORTS["rshop_core.symbolic"]


def test_rshop_backends_only_through_lower():
    upward = [
        (m, t, func, names)
        for m, found in IMPORTS.items()
        for t, _, func, names in found
        if _top(t) == "rshop_backends"
    ]
    assert upward, "model.lower() imports rshop_backends.lower"
    bad = [u for u in upward if not (u[1] == "rshop_backends" and u[2] == "lower" and u[3] == ("lower",))]
    assert not bad, f"rshop_core imports rshop_backends outside a lower() method: {bad}"
    assert [u[0] for u in upward] == ["rshop_core.lowerable"], (
        f"the one upward edge is Lowerable.lower (every model kind inherits it), received {upward}"
    )


def test_no_framework_at_module_level():
    bad = [(m, t) for m, found in IMPORTS.items() for t, top, _, _ in found if _top(t) in FRAMEWORKS and top]
    assert not bad, f"rshop_core imports a framework at module level: {bad}"
    inside = {m for m, found in IMPORTS.items() for t, _, _, _ in found if _top(t) in FRAMEWORKS}
    assert inside <= {m for m in MODULES if m.startswith("rshop_core.convert.")}, inside


@pytest.mark.parametrize("module", sorted(IR))
def test_the_ir_imports_only_the_ir(module):
    own = [t for t, _, _, _ in IMPORTS[module] if _top(t) == "rshop_core"]
    assert set(own) <= IR, f"{module} imports {sorted(set(own) - IR)}, outside the IR"


def test_module_level_imports_form_no_cycle():
    edges = {m: {t for t, top, _, _ in found if top and t in MODULES and t != m} for m, found in IMPORTS.items()}
    # a package's __init__ re-exports its modules; what a module imports from a package goes through it
    state: dict = {}

    def walk(m, path):
        state[m] = "open"
        for t in sorted(edges[m]):
            if state.get(t) == "open":
                cycle = path[path.index(t) :] + [t]
                raise AssertionError(f"module-level import cycle: {' -> '.join(cycle)}")
            if t not in state:
                walk(t, [*path, t])
        state[m] = "done"

    for m in sorted(edges):
        if m not in state:
            walk(m, [m])
