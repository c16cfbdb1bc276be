"""The study files that ship with bnsearch (a clone's ``studies/``; a wheel installs them
under ``<prefix>/share/bnsearch/studies``), copied where a person wants them."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from bnsearch.errors import UsageError

_SHIPPED = ("*.toml", "*.py")


def examples_folder() -> Path:
    """The shipped study files' folder: beside the package, else where the wheel put them."""
    here = Path(__file__).resolve().parents[2] / "studies"
    installed = Path(sys.prefix) / "share" / "bnsearch" / "studies"
    for folder in (here, installed):
        if any(folder.glob("*.toml")):
            return folder
    raise UsageError(
        f"the shipped study files are in neither {here} nor {installed}; reinstall bnsearch "
        "(pip install --force-reinstall bnsearch)."
    )


def copy_examples(target: Path) -> list[str]:
    """Copy the shipped study files into ``target`` (made if missing, refused if one is
    there already: nothing is copied then); their names."""
    source = examples_folder()
    files = sorted(p for pattern in _SHIPPED for p in source.glob(pattern))
    if target.exists() and not target.is_dir():
        raise UsageError(f"{target} is a file; give examples a folder.")
    taken = [p.name for p in files if (target / p.name).exists()]
    if taken:
        raise UsageError(
            f"{target} already holds {', '.join(taken)}; give examples an empty or new folder."
        )
    target.mkdir(parents=True, exist_ok=True)
    for path in files:
        shutil.copy2(path, target / path.name)
    return [p.name for p in files]
