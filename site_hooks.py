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
