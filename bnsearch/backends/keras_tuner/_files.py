"""A Keras Tuner project's bnsearch files: ``bnsearch_results.jsonl`` (a TrialResult a line,
appended and fsynced as each trial ends) and atomic writes for the others."""

from __future__ import annotations

import os
from pathlib import Path

from bnsearch.errors import StoreError
from bnsearch.trial import TrialResult

_RESULTS_FILE = "bnsearch_results.jsonl"


def append_result(folder: Path, result: TrialResult) -> None:
    """Append ``result`` to the project's results file, on disk before this returns."""
    with open(folder / _RESULTS_FILE, "a") as handle:
        handle.write(result.to_json() + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def results_from_project(folder: Path) -> list[TrialResult]:
    """Every finished trial of a Keras Tuner study as a TrialResult."""
    return _read_results(folder / _RESULTS_FILE)[0]


def _read_results(path: Path) -> tuple[list[TrialResult], bool]:
    """The results a project's file holds, and whether its last line is torn (left out)."""
    if not path.exists():
        return [], False
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    results = []
    for index, line in enumerate(lines):
        try:
            results.append(TrialResult.from_json(line))
        except (ValueError, KeyError, TypeError):
            if index < len(lines) - 1:
                raise StoreError(
                    f"{path}: line {index + 1} is not a trial result; restore the file or "
                    "start the study over with --allow-changed-study."
                ) from None
            return results, True
    return results, False


def repair_results(folder: Path) -> str | None:
    """Drop a torn last line of the project's results file; a notice saying so, or None."""
    path = folder / _RESULTS_FILE
    results, torn = _read_results(path)
    if not torn:
        return None
    write_atomically(path, "".join(r.to_json() + "\n" for r in results))
    return (
        f"bnsearch: notice: dropped the torn last line of {path} (a run stopped while writing "
        "it); that trial is not counted and the study goes on."
    )


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` all at once (written next to it, then renamed over it)."""
    partial = path.with_name(path.name + ".partial")
    try:
        with open(partial, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError:
        # A full disk: leave no half-written copy taking what room there is.
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, path)
