"""MLflow runs for a study of a person's own objective or hypermodel: a parent run created
with its first trial, a child run per trial, the verdict at the end when it has paired blocks."""

from __future__ import annotations

from bnsearch.config import DEFAULT_THRESHOLD, default_tracking_uri
from bnsearch.errors import ConfigError
from bnsearch.stats import Verdict, verdict_for
from bnsearch.tracking import MlflowTracker, run_name
from bnsearch.trial import TrialResult, keys


class YourStudyRuns:
    """The parent run of a study of your own and a child run per trial."""

    def __init__(self, study_name: str, tracking_uri: str | None, backend: str) -> None:
        self.tracker = MlflowTracker(tracking_uri or default_tracking_uri(), study_name)
        self.backend = backend
        self.logged: set[int] = set()
        #: The study's parent run, once the first trial is logged.
        self.parent_run_id: str | None = None

    def log(self, result: TrialResult) -> None:
        """Write a finished trial as a child run of the study's parent run (once a trial)."""
        if result.spec.number in self.logged:
            return
        if self.tracker.parent_run_id is None:
            self.tracker.connect()
            self.parent_run_id = self.tracker.start_study_run(
                run_name=run_name("study"),
                params={},
                tags={keys.BACKEND: self.backend},
            )
        self.tracker.finish_trial(None, result)
        self.logged.add(result.spec.number)

    def end(self, paired: list[TrialResult], status: str = "FINISHED") -> None:
        """End the parent run, with the verdict of the ``paired`` trials if there are any."""
        if self.tracker.parent_run_id is None:
            return
        if not paired:
            self.tracker.end_study_run(status=status)
            return
        verdict = verdict_for(paired)
        note = f"{verdict.headline}\n\n{verdict.bn.statement}\n\n{verdict.placement.statement}"
        self.tracker.end_study_run_with_verdict(verdict, note, verdict.words, status=status)


def paired_verdict(
    name: str, paired: list[TrialResult], fix: str, threshold: float | None, until: str
) -> Verdict:
    """The verdict of a study of your own's trials in paired blocks; a ConfigError saying
    ``fix`` when there are none."""
    if not paired:
        raise ConfigError(
            f"study {name!r} has no paired blocks (no trial has the user attribute "
            f"{keys.BLOCK!r}); {fix}"
        )
    return verdict_for(
        paired, threshold=DEFAULT_THRESHOLD if threshold is None else threshold, until=until
    )
