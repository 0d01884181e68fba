"""The documentation site (mkdocs.yml, site_hooks.py): the strict build passes, documents every exported name,
serves README.md as its landing page, turns the docstrings' Sphinx roles into links, and really fails on a
broken link, anchor or unlisted page.

Runs in ``nox -s site``, where mkdocs and mkdocstrings are installed (the engine sessions leave this file out).
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

WHY = "the site's packages are installed by `nox -s site`, which runs this file"
pytest.importorskip("mkdocs", reason=WHY)
griffe = pytest.importorskip("griffe", reason=WHY)
Inventory = pytest.importorskip("mkdocstrings", reason=WHY).Inventory

import doc_blocks  # noqa: E402  (after the skips: it is only needed where the site can be built)

ROOT = Path(__file__).resolve().parents[1]
ROOT_FILES = ("README.md", "CONTRIBUTING.md", "CHANGELOG.md", "site_hooks.py", "mkdocs.yml")
# the modules whose exports the API reference must list (a module without ``__all__`` is rendered whole)
EXPORTING = (
    "rshop_core",
    "rshop_core.layers",
    "rshop_core.cells",
    "rshop_core.functional",
    "rshop_core.initializers",
    "rshop_core.custom_ops",
    "rshop_core.errors",
    "rshop_core.serialization",
    "rshop_core.convert",
    "rshop_core.graph",
    "rshop_backends",
    "rshop_backends.keras",
    "rshop_backends.testing",
    "rshop_backends.parity",
    "rshop_backends.arrays",
    "rshop_backends.pytest_plugin",
    "rshop_backends.fuzzing",
    "rshop_backends.serving",
)
WHOLE = ("rshop_core.regularizers", "rshop_core.constraints", "rshop_core.specs", "rshop_backends.selection")


def _hooks():
    spec = importlib.util.spec_from_file_location("site_hooks", ROOT / "site_hooks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


hooks = _hooks()


def build(config: Path, site_dir: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(site_dir)]
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, check=False)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The real site, built once with --strict into a temporary folder; ``nox -s site`` has just built it with
    --strict (any warning fails) and names its folder in RSHOP_BUILT_SITE."""
    if built := os.environ.get("RSHOP_BUILT_SITE"):
        return Path(built).resolve()
    out = tmp_path_factory.mktemp("site")
    done = build(ROOT / "mkdocs.yml", out)
    assert done.returncode == 0, done.stderr
    assert "WARNING" not in done.stderr, done.stderr
    return out


def test_strict_build_passes_without_warnings(site):
    assert (site / "index.html").is_file()
    for page in ("guide", "ir", "decisions", "changelog", "contributing", "api/models", "api/lowered"):
        assert (site / page / "index.html").is_file(), page


def exports(module: str) -> list[str]:
    """``module.__all__``; read from the source where importing needs a framework (the Keras layer)."""
    if module == "rshop_backends.keras":
        tree = ast.parse((ROOT / "src/rshop_backends/keras/__init__.py").read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "__all__" for t in node.targets):
                return list(ast.literal_eval(node.value))
        raise AssertionError("rshop_backends.keras has no literal __all__")
    return list(importlib.import_module(module).__all__)


def test_api_reference_lists_every_exported_name(site):
    with open(site / "objects.inv", "rb") as f:
        inventory = set(Inventory.parse_sphinx(f))
    missing = [f"{m}.{name}" for m in EXPORTING for name in exports(m) if f"{m}.{name}" not in inventory]
    assert missing == []
    assert [m for m in WHOLE if m not in inventory] == []
    # the lowered layer of each engine, and the contract they share
    for cls in ("lowered.Lowered", "numpy.layer.NumpyLayer", "jax.layer.JaxLayer", "torch.layer.TorchLayer"):
        assert f"rshop_backends.{cls}" in inventory
    assert "rshop_backends.tensorflow.layer.TensorFlowLayer.serving_signature" in inventory  # members too


def _text(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def test_landing_page_is_the_readme(site):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    index = (site / "index.html").read_text(encoding="utf-8")
    pitch = re.search(r"\*\*(.+?)\*\*", readme, re.S)
    assert pitch is not None
    assert " ".join(pitch.group(1).split()) in _text(index)
    linked = set(re.findall(r"\]\(docs/([\w.-]+)\.md", readme))
    assert {"guide", "ir", "engines", "decisions"} <= linked
    for page in linked:  # README's links into docs/ point at the site's pages
        assert f'href="{page}/' in index, page
    assert 'href="contributing/"' in index and 'href="changelog/"' in index


def test_readme_links_rewritten_for_the_site():
    text = (
        "[a](docs/guide.md#8-weight-constraints) [b](CHANGELOG.md) [c](README.md) [d](https://x.org/docs/a.md) "
        "[e](#60-second-example) [f](CONTRIBUTING.md#setup)"
    )
    assert hooks.as_site_page(text) == (
        "[a](guide.md#8-weight-constraints) [b](changelog.md) [c](index.md) [d](https://x.org/docs/a.md) "
        "[e](#60-second-example) [f](contributing.md#setup)"
    )


def test_sphinx_roles_become_links(site):
    for page in sorted((site / "api").glob("*/index.html")):
        left = re.findall(r":(?:func|class|meth|mod|attr|exc|obj):", _text(page.read_text(encoding="utf-8")))
        assert left == [], page
    models = (site / "api/models/index.html").read_text(encoding="utf-8")
    # :meth:`Lowerable.lower <rshop_core.lowerable.Lowerable.lower>` in RecurrentModel's docstring
    assert re.search(r'href="#rshop_core\.lowerable\.Lowerable\.lower"[^>]*><code>Lowerable\.lower</code>', models)


def test_roles_resolved_from_where_they_are_written(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text('"""Top: :class:`Thing`, :mod:`.mod`."""\nfrom .mod import Thing\n')
    (pkg / "mod.py").write_text(
        '"""Module."""\n\n\nclass Thing:\n'
        '    """A :meth:`run`, :func:`~pkg.mod.helper`, :func:`the helper <pkg.mod.helper>`, :class:`Missing`."""\n\n'
        '    def run(self) -> None:\n        """Run."""\n\n\n'
        'def helper() -> None:\n    """:class:`~pkg.Thing` by its alias."""\n'
    )
    loaded = griffe.load("pkg", search_paths=[str(tmp_path)])
    thing, helper = loaded["mod.Thing"], loaded["mod.helper"]

    def ref(identifier: str, shown: str) -> str:
        return f'<autoref identifier="{identifier}" optional><code>{shown}</code></autoref>'

    assert hooks.roles_to_refs(loaded, loaded.docstring.value) == (
        f"Top: {ref('pkg.mod.Thing', 'Thing')}, {ref('pkg.mod', 'mod')}."
    )
    assert hooks.roles_to_refs(thing, thing.docstring.value) == (
        f"A {ref('pkg.mod.Thing.run', 'run')}, {ref('pkg.mod.helper', 'helper')}, "
        f"{ref('pkg.mod.helper', 'the helper')}, {ref('Missing', 'Missing')}."
    )
    assert hooks.roles_to_refs(helper, helper.docstring.value) == f"{ref('pkg.mod.Thing', 'Thing')} by its alias."


def test_api_stubs_hold_no_unexecuted_code():
    """tests/test_docs.py runs the python blocks of docs/*.md; the API stubs under docs/api/ are mkdocstrings
    directives only, so a python block there would never run."""
    stubs = sorted((ROOT / "docs/api").glob("*.md"))
    assert len(stubs) >= 15
    assert {p.name: doc_blocks.blocks(p) for p in stubs} == {p.name: [] for p in stubs}
    assert all("::: rshop_" in p.read_text(encoding="utf-8") for p in stubs if p.name != "index.md")


def test_strict_build_fails_on_broken_link_anchor_and_unlisted_page(tmp_path):
    """A copy of the site with one broken link, one broken anchor and one page missing from the nav."""
    copy = tmp_path / "repo"
    copy.mkdir()
    for name in ROOT_FILES:
        shutil.copy(ROOT / name, copy / name)
    (copy / "src").symlink_to(ROOT / "src")
    shutil.copytree(ROOT / "docs", copy / "docs")
    guide = copy / "docs/guide.md"
    guide.write_text(
        guide.read_text(encoding="utf-8") + "\n[gone](no-such-page.md) and [bad anchor](ir.md#no-such-section)\n",
        encoding="utf-8",
    )
    (copy / "docs/orphan.md").write_text("# Orphan\n", encoding="utf-8")
    done = build(copy / "mkdocs.yml", tmp_path / "out")
    said = done.stdout + done.stderr
    assert done.returncode != 0
    assert "Aborted with 3 warnings in strict mode" in said, said
    assert "contains a link 'no-such-page.md', but the target is not found" in said
    assert "'ir.md' does not contain an anchor '#no-such-section'" in said
    assert 'not included in the "nav" configuration:\n  - orphan.md' in said


def test_every_plot_is_shown_on_a_page(site):
    """A PNG in docs/ (benchmark plots, the examples' loss curves) is embedded by a page, and the site holds it."""
    plots = sorted(p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.png"))
    assert {"benchmarks.png", "benchmarks-parallel.png", "examples/adding_long.png"} <= set(plots)
    pages = " ".join(p.read_text(encoding="utf-8") for p in (ROOT / "docs").glob("*.md"))
    assert [p for p in plots if f"]({p})" not in pages] == []
    assert [p for p in plots if not (site / p).is_file()] == []
