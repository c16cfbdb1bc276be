"""MkDocs hooks: the build fails (under ``--strict``) when the generated reference is out of
step with the code, so a new flag or command cannot ship with a stale page."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

_log = logging.getLogger("mkdocs.plugins.bnsearch")


def on_pre_build(config: Any) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    import _reference

    if _reference.out_of_step():
        _log.warning(
            "docs/reference/cli.md is out of step with the settings and command tables; "
            "run python docs/_reference.py"
        )


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """The home page is the README, its ``docs/`` links made relative to the site."""
    if page.file.src_uri != "index.md":
        return markdown
    readme = (Path(config["docs_dir"]).parent / "README.md").read_text(encoding="utf-8")
    return readme.replace("](docs/", "](").replace("](CHANGELOG.md)", "](changelog.md)")
