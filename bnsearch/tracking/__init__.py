"""MLflow as a view of the store: runs, verdict tags, sync, the local store, ui."""

from __future__ import annotations

from bnsearch.tracking._connection import TrackingUnavailable, existing_experiment_id
from bnsearch.tracking._local_store import relocate_artifacts, runs_url, ui_command, ui_environment
from bnsearch.tracking._models import Models
from bnsearch.tracking._parent_runs import ParentRuns
from bnsearch.tracking._trial_runs import TrialRuns, run_name

__all__ = [
    "MlflowTracker",
    "TrackingUnavailable",
    "existing_experiment_id",
    "relocate_artifacts",
    "run_name",
    "runs_url",
    "ui_command",
    "ui_environment",
]


class MlflowTracker(ParentRuns, TrialRuns, Models):
    """Writes a study's runs to the MLflow experiment named after it: a parent run per
    invocation, a child run per trial, all through one :class:`Connection` (retries, outage
    breaker, full disk); it knows TrialSpecs and TrialResults, not Optuna or Keras Tuner."""
