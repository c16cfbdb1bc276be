"""The failure policy: a study whose last batches all failed stops and says why."""

from __future__ import annotations

from collections import Counter

from bnsearch.errors import StudyFailedError
from bnsearch.trial import TrialResult, TrialState, failure_kind

MAX_CONSECUTIVE_FAILED_BATCHES = 3


def stop_after_failures(results: list[TrialResult], batch: list[TrialResult]) -> None:
    """Raise StudyFailedError once the last :data:`MAX_CONSECUTIVE_FAILED_BATCHES` batches
    failed entirely, with the commonest reasons (grouped across epochs)."""
    if batch and any(r.state is not TrialState.FAILED for r in batch):
        return
    failed_run = 0
    for result in reversed(results):
        if result.state is not TrialState.FAILED:
            break
        failed_run += 1
    if failed_run / max(len(batch), 1) < MAX_CONSECUTIVE_FAILED_BATCHES:
        return
    reasons = Counter(failure_kind(r.fail_reason) for r in results[-failed_run:])
    summary = "; ".join(f"{n}× {reason}" for reason, n in reasons.most_common(3))
    raise StudyFailedError(
        f"stopped after {failed_run} consecutive failed trials ({summary}); check the data "
        "and the learning-rate range."
    )
