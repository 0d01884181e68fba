"""mkdocs hooks of the documentation site (mkdocs.yml names this file).

The landing page is README.md itself, served as ``index.md`` (and CONTRIBUTING.md and CHANGELOG.md as pages
of their own): one copy of each text, so the site and the repository cannot drift apart. Their links are
written for a reader of the repository (``docs/guide.md``, ``CHANGELOG.md``); on the site they point at the
pages (``guide.md``, ``changelog.md``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import griffe
from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parent
# repository file -> the site page that serves it
ROOT_PAGES = {"README.md": "index.md", "CONTRIBUTING.md": "contributing.md", "CHANGELOG.md": "changelog.md"}
# the target of a relative Markdown link, up to an anchor: ](docs/guide.md#8-weight-constraints)
LINK = re.compile(r"\]\((?!https?://|#)([^)#\s]+)")


def site_link(target: str) -> str:
    """A link target of a repository-root file, as the site page that serves that file links it."""
    if target in ROOT_PAGES:
        return ROOT_PAGES[target]
    return target.removeprefix("docs/")


def as_site_page(text: str) -> str:
    """A repository-root Markdown file's text with its relative links rewritten for the site."""
    return LINK.sub(lambda m: "](" + site_link(m.group(1)), text)


def on_files(files: Files, config: MkDocsConfig, **_: Any) -> Files:
    for source, page in ROOT_PAGES.items():
        text = (ROOT / source).read_text(encoding="utf-8")
        files.append(File.generated(config, page, content=as_site_page(text)))
    return files


# --- a griffe extension (mkdocs.yml: mkdocstrings' ``extensions``) -------------------------------------------
# The docstrings cross-reference in Sphinx roles (:class:`~rshop_core.RecurrentModel`, :meth:`run`), which
# Markdown would print as they are. Each becomes an optional cross-reference: a link where the target has a
# page, plain code where it has none (a private module), so a role never breaks the strict build.
# :role:`target`, :role:`~target` (shown by its last name) or :role:`title <target>`
ROLE = re.compile(r":(?:py:)?(?:func|class|meth|mod|attr|data|exc|obj):`(~?)(?:([^`<]*?)\s*<)?([^`<>]+)>?`")


def _canonical(obj: griffe.Object | griffe.Alias, path: str) -> str | None:
    """The canonical path of ``path`` (an alias followed to its definition), or None where griffe knows none."""
    try:
        found = obj.modules_collection.get_member(path)
    except (KeyError, ValueError, griffe.AliasResolutionError, griffe.CyclicAliasError):
        return None
    try:
        return str(found.canonical_path)
    except (griffe.AliasResolutionError, griffe.CyclicAliasError):
        return str(found.path)


def resolve_role(obj: griffe.Object, target: str) -> str:
    """The identifier a role's target names, seen from ``obj``: relative to its package for ``.name``, else
    looked up in the scopes around ``obj`` (class, module) and then as an absolute path."""
    if target.startswith("."):
        rest = target.lstrip(".")
        base: griffe.Object | None = obj.module if obj.module.is_init_module else obj.module.parent
        for _ in range(len(target) - len(rest) - 1):
            base = base.parent if base is not None else None
        candidates = [f"{base.path}.{rest}"] if base is not None else []
    else:
        candidates = []
        scope: griffe.Object | None = obj
        while scope is not None:
            if scope.is_class or scope.is_module:
                candidates.append(f"{scope.path}.{target}")
            scope = scope.parent
        candidates.append(target)
    for path in candidates:
        if (found := _canonical(obj, path)) is not None:
            return found
    return candidates[-1] if candidates else target


def roles_to_refs(obj: griffe.Object, text: str) -> str:
    def ref(m: re.Match[str]) -> str:
        short, title, target = m.group(1) == "~", m.group(2), m.group(3).strip()
        shown = title or (target.rsplit(".", 1)[-1] if short else target.lstrip("."))  # as Sphinx shows it
        return f'<autoref identifier="{resolve_role(obj, target)}" optional><code>{shown}</code></autoref>'

    return ROLE.sub(ref, text)


class SphinxRoles(griffe.Extension):
    """Rewrites the Sphinx roles of every docstring of a loaded package as optional cross-references."""

    def on_package(self, *, pkg: griffe.Module, **_: Any) -> None:
        todo: list[griffe.Object] = [pkg]
        while todo:
            obj = todo.pop()
            if obj.docstring is not None:
                obj.docstring.value = roles_to_refs(obj, obj.docstring.value)
            todo.extend(m for m in obj.members.values() if not m.is_alias and isinstance(m, griffe.Object))
