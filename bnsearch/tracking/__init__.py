"""MLflow as a view of the store: runs, verdict tags, sync, the local store, ui."""

from __future__ import annotations

from pathlib import Path

from bnsearch.tracking._connection import TrackingUnavailable, existing_experiment_id
from bnsearch.tracking._local_store import relocate_artifacts, runs_url, ui_command, ui_environment
from bnsearch.tracking._models import Models
from bnsearch.tracking._parent_runs import ParentRuns
from bnsearch.tracking._trial_runs import TrialRuns

__all__ = [
    "MlflowTracker",
    "TrackingUnavailable",
    "existing_experiment_id",
    "relocate_artifacts",
    "runs_url",
    "ui_command",
    "ui_environment",
]


class MlflowTracker(ParentRuns, TrialRuns, Models):
    """Writes a study's runs to one MLflow experiment named after the study: a parent run per
    invocation, a child run per trial, each part a module, all through one :class:`Connection`
    (its retries, its outage breaker, its full disk). It knows TrialSpecs and TrialResults,
    nothing of Optuna or Keras Tuner."""

    def __init__(
        self, tracking_uri: str, experiment_name: str, artifact_root: Path | None = None
    ) -> None:
        super().__init__(tracking_uri, experiment_name, artifact_root)
        #: The study's parent run while one is open (set by :meth:`start_study_run`, or by a
        #: worker process writing trial runs under its parent's run).
        self.parent_run_id: str | None = None
        self._parent_run_name = ""
        self.pending = 0  # trial runs not (fully) written, for sync to back-fill
        self._without_params: set[str] = set()
