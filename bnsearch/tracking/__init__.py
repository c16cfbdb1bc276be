"""MLflow as a view of the store: runs, verdict tags, sync, the local store, ui.

:class:`MlflowTracker` is a :class:`Connection` with one part a module: the parent run,
the trial runs and sync, and models; ``_local_store`` and ``_ui`` hold MLflow's SQLite files
and the way to its UI.
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
