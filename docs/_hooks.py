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
