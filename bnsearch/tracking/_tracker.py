"""MLflow tracking: one experiment per study, a parent run per invocation, a child run per trial.

:class:`MlflowTracker` knows TrialSpecs and TrialResults, nothing of Optuna or Keras Tuner.
"""

from __future__ import annotations

from pathlib import Path

from bnsearch.tracking._models import Models
from bnsearch.tracking._parent_runs import ParentRuns
from bnsearch.tracking._trial_runs import TrialRuns


class MlflowTracker(ParentRuns, TrialRuns, Models):
    """Writes a study's runs to one MLflow experiment named after the study, through one
    :class:`Connection` (its retries, its outage breaker, its full disk)."""

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
