"""Study files: one TOML file per study, its keys the flags' names (docs/reference/cli.md);
flags override the file, and unknown keys and wrong types are refused naming key and file."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

from bnsearch.config._settings import SETTINGS
from bnsearch.errors import ConfigError, UsageError
from bnsearch.trial import did_you_mean


def _keys(section: str) -> dict[str, tuple[type, ...]]:
    """key → accepted Python types (bool is checked before int: True is an int in Python)."""
    return {s.key: s.types for s in SETTINGS if s.section == section and s.key}


STUDY_KEYS, NETWORK_KEYS = _keys("study"), _keys("network")


def _check_table(
    table: dict[str, Any],
    keys: dict[str, tuple[type, ...]],
    where: str,
    tables: tuple[str, ...] = (),
) -> None:
    """Every key of ``table`` known and of its type (``tables``: keys holding a table)."""
    for key, value in table.items():
        if key in tables:
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: `{key}` must be a table ([{key}]).")
            continue
        if key not in keys:
            hint = did_you_mean(key, [*keys, *tables], "known keys")
            raise ConfigError(f"{where}: unknown key {key!r}; {hint}")
        types = keys[key]
        wrong_bool = isinstance(value, bool) and bool not in types
        # A list of widths or counts (``hidden_units = [64, 64]``) holds whole numbers only.
        wrong_items = (
            isinstance(value, list)
            and int in types
            and not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        )
        if wrong_bool or wrong_items or not isinstance(value, types):
            expected = " or ".join(
                f"{t.__name__} of int" if t is list else t.__name__ for t in types
            )
            raise ConfigError(f"{where}: `{key}` must be {expected}, but got {value!r}.")


def load_study_file(path: Path) -> dict[str, Any]:
    """Read and check a study file; return its settings with ``network`` and ``space`` as
    nested dicts and a data path made absolute."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib

    where = str(path)
    if path.is_dir():
        raise ConfigError(
            f"{where} is a folder, not a study file; give one .toml file, or run "
            f"python -m bnsearch sweep {where} for every study file in it."
        )
    if not path.is_file():
        raise ConfigError(f"study file {where} does not exist; check the path.")
    try:
        raw = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"{where}: not valid TOML ({error}).") from error
    _check_table(raw, STUDY_KEYS, where, ("network", "space"))
    settings = {"network": {}, "space": {}, **raw}
    _check_table(settings["network"], NETWORK_KEYS, f"{where} [network]")
    data = settings.get("data")
    if data and ":" not in data and data != "synthetic":
        settings["data"] = str((path.parent / data).resolve())
    model = settings["network"].get("model")
    if model:  # a file (x.keras, x.py:build) is relative to the study file, as data is
        file, colon, name = model.partition(":") if ".py:" in model else (model, "", "")
        if file.endswith((".keras", ".py")) and not Path(file).is_absolute():
            settings["network"]["model"] = str((path.parent / file).resolve()) + colon + name
    settings.setdefault("name", path.stem)
    return settings


def copy_examples(target: Path) -> list[str]:
    """Copy the shipped study files (a clone's ``studies/``, else where the wheel put them:
    ``<prefix>/share/bnsearch/studies``) into ``target`` (made if missing, refused if one is
    there already: nothing is copied then); their names."""
    here = Path(__file__).resolve().parents[2] / "studies"
    installed = Path(sys.prefix) / "share" / "bnsearch" / "studies"
    source = next((folder for folder in (here, installed) if any(folder.glob("*.toml"))), None)
    if source is None:
        raise UsageError(
            f"the shipped study files are in neither {here} nor {installed}; reinstall "
            "bnsearch (pip install --force-reinstall bnsearch)."
        )
    files = sorted(p for pattern in ("*.toml", "*.py") for p in source.glob(pattern))
    if target.exists() and not target.is_dir():
        raise UsageError(f"{target} is a file; give examples a folder.")
    if taken := [p.name for p in files if (target / p.name).exists()]:
        raise UsageError(
            f"{target} already holds {', '.join(taken)}; give examples an empty or new folder."
        )
    target.mkdir(parents=True, exist_ok=True)
    for path in files:
        shutil.copy2(path, target / path.name)
    return [p.name for p in files]
