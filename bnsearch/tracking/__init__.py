"""MLflow as a view of the store: runs, verdict tags, sync, the local store, ui.

One job a module; :class:`MlflowTracker` is composed of the parts:

- ``_tracker``: :class:`MlflowTracker`, the one public class, a thin composition of the rest.
- ``_connection``: the client, the study's experiment, the one retry policy and outage breaker.
- ``_parent_runs``: the study's parent run: its start, data set, end, verdict and latest mark.
- ``_trial_runs``: a child run per trial: start, params, epochs, outcome, kill.
- ``_sync``: making MLflow agree with the backend's store; ending abandoned runs.
- ``_models``: artifacts and Keras models logged to a run.
- ``_local_store``: MLflow's SQLite store: its file, and the raw SQL that moves artifact paths.
- ``_ui``: the command, environment and runs URL that open MLflow's UI on a study.
"""

from __future__ import annotations

from bnsearch.tracking._connection import TrackingUnavailable, existing_experiment_id
from bnsearch.tracking._local_store import relocate_artifacts
from bnsearch.tracking._tracker import MlflowTracker
from bnsearch.tracking._ui import runs_url, ui_command, ui_environment

__all__ = [
    "MlflowTracker",
    "TrackingUnavailable",
    "existing_experiment_id",
    "relocate_artifacts",
    "runs_url",
    "ui_command",
    "ui_environment",
]
