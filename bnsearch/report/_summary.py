"""What a person reads in the terminal: a progress line per trial and a table per placement."""

from __future__ import annotations

import math
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TextIO

from bnsearch.trial import PLACEMENTS, TrialResult, TrialState

__all__ = ["table_metrics", "PlacementSummary", "Progress", "format_table", "summarize"]


def _clock(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Progress:
    """Prints ``[done/total] trial N placement val_loss best elapsed ETA`` after each trial.

    One plain line per trial (no carriage returns), so the output reads the same in a
    terminal, a log file and a cron mail.
    """

    def __init__(
        self, total: int, timeout: float | None = None, stream: TextIO | None = None
    ) -> None:
        self.total = total
        self.timeout = timeout
        self.stream = stream or sys.stdout
        self.done = 0
        self.best: tuple[float, int] | None = None
        self.started = time.monotonic()

    def update(self, result: TrialResult) -> None:
        self.done += 1
        value = result.value
        if value is not None and (self.best is None or value < self.best[0]):
            self.best = (value, result.spec.number)
        elapsed = time.monotonic() - self.started
        remaining = elapsed / self.done * (self.total - self.done)
        if self.timeout is not None:
            remaining = min(remaining, max(self.timeout - elapsed, 0))
        shown = f"{value:.4f}" if value is not None else result.state.value.lower()
        best = f"{self.best[0]:.4f} (trial {self.best[1]})" if self.best else "-"
        width = len(str(self.total))
        line = (
            f"[{self.done:>{width}}/{self.total}] trial {result.spec.number:<4d} "
            f"{result.config.placement:<13s} val_loss {shown:<9s} best {best:<20s} "
            f"elapsed {_clock(elapsed)}  eta {_clock(remaining)}"
        )
        if result.state is TrialState.FAILED and result.fail_reason:
            line += f"\n    failed: {result.fail_reason}"
        print(line, file=self.stream, flush=True)


@dataclass(frozen=True)
class PlacementSummary:
    placement: str
    complete: int
    pruned: int
    failed: int
    best_val_loss: float
    median_val_loss: float
    best_val_accuracy: float
    median_val_accuracy: float


def table_metrics(table: Sequence[PlacementSummary]) -> dict[str, float]:
    """The summary table as the parent run's metrics (``<placement>.best_val_loss``, ...)."""
    values: dict[str, float] = {}
    for row in table:
        values[f"{row.placement}.best_val_loss"] = row.best_val_loss
        values[f"{row.placement}.median_val_loss"] = row.median_val_loss
        values[f"{row.placement}.best_val_accuracy"] = row.best_val_accuracy
    return values


def summarize(results: Sequence[TrialResult]) -> list[PlacementSummary]:
    """One row per placement over completed trials (final-epoch values)."""
    rows = []
    for placement in sorted({r.config.placement for r in results}, key=_placement_order):
        mine = [r for r in results if r.config.placement == placement]
        done = [r for r in mine if r.state is TrialState.COMPLETE]
        losses = [r.final("val_loss") for r in done]
        accs = [r.final("val_accuracy") for r in done]
        rows.append(
            PlacementSummary(
                placement=placement,
                complete=len(done),
                pruned=sum(r.state is TrialState.PRUNED for r in mine),
                failed=sum(r.state is TrialState.FAILED for r in mine),
                best_val_loss=min(losses) if losses else math.nan,
                median_val_loss=statistics.median(losses) if losses else math.nan,
                best_val_accuracy=max(accs) if accs else math.nan,
                median_val_accuracy=statistics.median(accs) if accs else math.nan,
            )
        )
    return rows


def _placement_order(placement: str) -> int:
    return PLACEMENTS.index(placement) if placement in PLACEMENTS else len(PLACEMENTS)


def format_table(rows: Sequence[PlacementSummary]) -> str:
    header = (
        f"{'placement':<14s}{'complete':>9s}{'pruned':>8s}{'failed':>8s}"
        f"{'best val_loss':>15s}{'median':>9s}{'best val_acc':>14s}{'median':>9s}"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        lines.append(
            f"{row.placement:<14s}{row.complete:>9d}{row.pruned:>8d}{row.failed:>8d}"
            f"{row.best_val_loss:>15.4f}{row.median_val_loss:>9.4f}"
            f"{row.best_val_accuracy:>14.4f}{row.median_val_accuracy:>9.4f}"
        )
    return "\n".join(lines)
