"""What a person reads in the terminal: a progress line per trial and a table per placement."""

from __future__ import annotations

import math
import statistics
import sys
import textwrap
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TextIO

from bnsearch.stats import loss_text
from bnsearch.trial import Phase, TrialResult, TrialState, in_placement_order


def _clock(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Progress:
    """Prints what a study is doing: a line at each quarter of a batch's training (a look,
    or the confirmation round), then a line per trial with an ETA from the batch's pace,
    timed from its first epoch per trial (the first carries the graph's compilation).
    Without batches (Keras Tuner's own search) a trial line counts the run's planned trials
    (its ETA cut at ``timeout``)."""

    def __init__(
        self, total: int, timeout: float | None = None, stream: TextIO | None = None
    ) -> None:
        self.total, self.timeout, self.stream = total, timeout, stream or sys.stdout
        self.done = 0
        self.best: float | None = None
        self.started = time.monotonic()
        self.on_batch(Phase.SEARCH, 0, 0)  # no batch yet (batch_size 0)

    def on_batch(self, phase: Phase, look: int, n_trials: int, epochs: int = 1) -> None:
        """A batch of ``n_trials`` trials of up to ``epochs`` epochs starts training."""
        self.batch_label = "confirm" if phase == Phase.CONFIRM else f"look {look}"
        self.batch_size, self.batch_epochs = n_trials, max(1, n_trials * epochs)
        self.epochs_done = self.batch_done = 0
        self.pace_from: tuple[float, int] | None = None  # (time, trial-epochs)
        self.next_quarter = 1
        self.trained_at: float | None = None

    def on_epoch(self) -> None:
        """A trial of the batch finished an epoch."""
        now = self.trained_at = time.monotonic()
        self.epochs_done += 1
        if self.pace_from is None and self.epochs_done >= self.batch_size:
            self.pace_from = (now, self.epochs_done)
        fraction = self.epochs_done / self.batch_epochs
        quarter = min(int(fraction * 4), 3)  # the quarters of the batch's training passed
        if quarter < self.next_quarter:
            return
        self.next_quarter = quarter + 1
        if self.pace_from is None or self.epochs_done <= self.pace_from[1]:
            return
        since, reference = self.pace_from
        remaining = (now - since) * (self.batch_epochs - self.epochs_done)
        remaining /= self.epochs_done - reference
        print(
            f"[{self.batch_label}: {self.batch_size} trials] training {100 * fraction:.0f} %  "
            f"elapsed {_clock(now - self.started)}  batch eta {_clock(round(remaining))}",
            file=self.stream,
            flush=True,
        )

    def __call__(self, result: TrialResult) -> None:
        self.done += 1
        value = result.value
        if value is not None:
            self.best = value if self.best is None else min(self.best, value)
        now = time.monotonic()
        elapsed = now - self.started
        if self.batch_size:
            self.batch_done += 1
            if self.trained_at is None:  # an engine that reported no epoch
                self.trained_at = now
            remaining = (now - self.trained_at) / self.batch_done
            remaining *= max(self.batch_size - self.batch_done, 0)
            count = f"[{self.batch_done:>{len(str(self.batch_size))}}/{self.batch_size}] "
            count += f"{self.batch_label:<7s} "
            eta = f"batch eta {_clock(round(remaining))}"  # rounded: most batches end in seconds
        else:
            remaining = elapsed / self.done * max(self.total - self.done, 0)
            if self.timeout is not None:
                remaining = min(remaining, max(self.timeout - elapsed, 0))
            count = f"[{self.done:>{len(str(self.total))}}/{self.total}] "
            eta = f"eta {_clock(remaining)}"
        shown = loss_text(value) if value is not None else result.state.value.lower()
        best = loss_text(self.best) if self.best is not None else "-"
        # Narrow columns (a wider placement or value shifts the rest) keep the line within
        # 100 characters; the best trial's number is in the study's summary.
        line = (
            f"{count}trial {result.spec.number:<3d} {result.config.placement:<7s} "
            f"val_loss {shown:<7s} best {best:<7s} elapsed {_clock(elapsed)}  {eta}"
        )
        if result.state is TrialState.FAILED and result.fail_reason:
            line += "\n" + textwrap.fill(
                f"failed: {result.fail_reason}", 100, initial_indent="    ",
                subsequent_indent="      ",
            )  # fmt: skip
        print(line, file=self.stream, flush=True)


@dataclass(frozen=True)
class PlacementSummary:
    """One placement's row of the study's table: its trials by state, the best and median
    final ``val_loss`` and :attr:`second` metric of its completed ones."""

    placement: str
    complete: int
    pruned: int
    failed: int
    best_val_loss: float
    median_val_loss: float
    best_second: float
    median_second: float
    second: str = "val_accuracy"


def table_metrics(table: Sequence[PlacementSummary]) -> dict[str, float]:
    """The summary table as the parent run's metrics (``<placement>.best_val_loss``, ...)."""
    values: dict[str, float] = {}
    for row in table:
        values[f"{row.placement}.best_val_loss"] = row.best_val_loss
        values[f"{row.placement}.median_val_loss"] = row.median_val_loss
        values[f"{row.placement}.best_{row.second}"] = row.best_second
    return values


def second_metric(results: Sequence[TrialResult]) -> str:
    """The metric beside the loss: ``val_mae`` for a regression, else ``val_accuracy``."""
    return "val_mae" if any("val_mae" in r.history for r in results) else "val_accuracy"


def summarize(results: Sequence[TrialResult]) -> list[PlacementSummary]:
    """One row per placement over completed trials (final-epoch values)."""
    second = second_metric(results)
    best = max if second == "val_accuracy" else min
    rows = []
    for placement in in_placement_order(r.config.placement for r in results):
        mine = [r for r in results if r.config.placement == placement]
        done = [r for r in mine if r.state is TrialState.COMPLETE]
        # A study of your own objective records no accuracy: None is left out.
        losses = [v for r in done if (v := r.final("val_loss")) is not None]
        seconds = [v for r in done if (v := r.final(second)) is not None and math.isfinite(v)]
        rows.append(
            PlacementSummary(
                placement=placement,
                complete=len(done),
                pruned=sum(r.state is TrialState.PRUNED for r in mine),
                failed=sum(r.state is TrialState.FAILED for r in mine),
                best_val_loss=min(losses) if losses else math.nan,
                median_val_loss=statistics.median(losses) if losses else math.nan,
                best_second=best(seconds) if seconds else math.nan,
                median_second=statistics.median(seconds) if seconds else math.nan,
                second=second,
            )
        )
    return rows


def format_table(rows: Sequence[PlacementSummary]) -> str:
    """The table as the terminal and ``report.md`` show it."""
    column = (rows[0].second if rows else "val_accuracy").replace("accuracy", "acc")
    header = (
        f"{'placement':<14s}{'complete':>9s}{'pruned':>8s}{'failed':>8s}"
        f"{'best val_loss':>15s}{'median':>9s}{'best ' + column:>14s}{'median':>9s}"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        lines.append(
            f"{row.placement:<14s}{row.complete:>9d}{row.pruned:>8d}{row.failed:>8d}"
            f"{loss_text(row.best_val_loss):>15s}{loss_text(row.median_val_loss):>9s}"
            f"{loss_text(row.best_second):>14s}{loss_text(row.median_second):>9s}"
        )
    return "\n".join(lines)
