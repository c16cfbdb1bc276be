"""The settings table as ``--flags`` (their real defaults in ``--help``) and as the docs' table
of settings (docs/reference/cli.md)."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable
from typing import Any

from bnsearch.config._settings import SETTINGS, Setting
from bnsearch.config._study_config import StudyConfig
from bnsearch.errors import UsageError
from bnsearch.networks import NetworkSettings


def default_of(item: Setting) -> Any:
    """The setting's default as its dataclass declares it (None: computed at run time)."""
    holder = {"study": StudyConfig, "network": NetworkSettings}.get(item.section)
    defaults = {f.name: f.default for f in dataclasses.fields(holder)} if holder else {}
    return defaults.get(item.name)


def _shown_default(item: Setting) -> str:
    if item.default_text is not None:
        return item.default_text()
    value = default_of(item)
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return "none" if value is None else str(value)


def _flag_type(item: Setting) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        if list in item.types:
            parts = [p.strip() for p in text.split(",") if p.strip()]
            if item.types == (list,):
                return parts
            try:
                return [int(p) for p in parts]
            except ValueError:
                raise UsageError(
                    f"{item.flag} takes comma-separated integers such as 64,64, not {text!r}."
                ) from None
        kind = float if float in item.types else item.types[0]
        try:
            return kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind.__name__}, got {text!r}") from None

    return parse


def add_flags(parser: argparse.ArgumentParser, names: tuple[str, ...] | None = None) -> None:
    """Every setting (or those ``names``) as a flag of ``parser``, grouped as in ``--help``."""
    groups: dict[str, Any] = {}
    for item in (item for item in SETTINGS if names is None or item.name in names):
        if item.group not in groups:
            groups[item.group] = parser.add_argument_group(item.group)
        options: dict[str, Any] = {"action": "store_true"}
        if item.types != (bool,):
            options = {"type": _flag_type(item), "choices": item.accepted or None}
            options["metavar"] = None if item.choices else item.name.upper()
        text = f"{item.help} (default {_shown_default(item)})"
        groups[item.group].add_argument(item.flag, dest=item.name, help=text, **options)


def markdown_table() -> str:
    """The docs' table of settings: flag, study-file key, default, meaning."""
    lines = ["| flag | study file | default | meaning |", "|---|---|---|---|"]
    for item in SETTINGS:
        where = {"network": "[network] ", "space": "[space] "}.get(item.section, "")
        key = f"`{where}{item.key}`" if item.key else "`[space]` table"
        choices = f" ({', '.join(item.choices)})" if item.choices else ""
        lines.append(f"| `{item.flag}` | {key} | {_shown_default(item)} | {item.help}{choices} |")
    return "\n".join(lines)
