"""The one place that turns a trial's epochs into a TrialResult: every engine fails a trial
whose ``loss`` or ``val_loss`` turns NaN or infinite, and words why, the same way."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Mapping

from bnsearch.errors import error_line
from bnsearch.trial._records import METRICS, TASK_METRICS, TrialResult, TrialSpec, TrialState

_WATCHED = ("loss", "val_loss")
_EPOCH = re.compile(r" (at|during) epoch (\d+)$")
#: The loss a diverged trial stands for where trials are compared (the paired blocks): the
#: largest float32, worse than any loss a network that trained can reach.
DIVERGED_LOSS = 3.4028234663852886e38


def is_divergence(reason: str | None) -> bool:
    """Whether a failure reason is the NaN rule's (the loss ran away), not an exception's."""
    return reason is not None and reason.startswith(_WATCHED) and " became " in reason


def failure_kind(reason: str | None) -> str:
    """A failure reason without its epoch: ``"loss became nan"`` for every epoch."""
    return _EPOCH.sub("", reason or "unknown")


def failure_epoch(reason: str | None) -> int | None:
    """The epoch a failure reason names (``"loss became inf at epoch 2"``: 2), if any."""
    found = _EPOCH.search(reason or "")
    return int(found.group(2)) if found else None


class TrialRecorder:
    """Collects one trial's per-epoch metrics and decides its state; ``should_prune(epoch,
    metrics)`` (the backend's pruner) is asked after each healthy epoch."""

    def __init__(
        self,
        spec: TrialSpec,
        engine: str,
        should_prune: Callable[[int, dict[str, float]], bool] | None = None,
    ) -> None:
        self.spec = spec
        self.engine = engine
        self.should_prune = should_prune
        self.history: dict[str, list[float]] = {m: [] for m in METRICS}
        self.state = TrialState.COMPLETE
        self.reason: str | None = None
        self.started = time.perf_counter()

    @property
    def stopped(self) -> bool:
        return self.state is not TrialState.COMPLETE

    def record_epoch(
        self, epoch: int, metrics: Mapping[str, float], diverged: bool = False
    ) -> bool:
        """Record one epoch; True when the trial stops here (diverged or pruned). ``diverged``:
        the engine saw a non-finite loss inside the epoch, whose averages may look finite."""
        values = {m: float(metrics.get(m, math.nan)) for m in METRICS}
        for name, value in values.items():
            self.history[name].append(value)
        for name in TASK_METRICS:  # kept only where the engine measured them
            if name in metrics:
                self.history.setdefault(name, []).append(float(metrics[name]))
        bad = next((m for m in _WATCHED if not math.isfinite(values[m])), None)
        if self.stopped:
            pass  # a batch already failed it; the epoch's values are kept, the reason too
        elif bad is not None:
            self.fail(f"{bad} became {values[bad]} at epoch {epoch}")
        elif diverged:
            self.fail(f"loss became non-finite during epoch {epoch}")
        elif self.should_prune is not None and self.should_prune(epoch, values):
            self.state = TrialState.PRUNED
            self.reason = f"pruned after epoch {epoch}"
        return self.stopped

    def record_batch_loss(self, epoch: int, loss: float) -> bool:
        """True (and FAILED) when a batch's loss is not finite: it poisons every later batch."""
        if math.isfinite(loss):
            return False
        self.fail(f"loss became {loss} during epoch {epoch}")
        return True

    def fail(self, reason: str) -> None:
        self.state = TrialState.FAILED
        self.reason = reason

    def fail_with(self, error: BaseException) -> None:
        """A trial that raised: its failure is data, not a crash of the study."""
        self.fail(error_line(error)[:500])

    def result(self, wall_time_s: float | None = None) -> TrialResult:
        return TrialResult(
            spec=self.spec,
            state=self.state,
            history=self.history,
            fail_reason=self.reason,
            wall_time_s=time.perf_counter() - self.started if wall_time_s is None else wall_time_s,
            engine=self.engine,
        )
