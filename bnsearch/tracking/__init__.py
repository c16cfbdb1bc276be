"""MLflow as a view of the store: runs, verdict tags, sync, the local store, ui."""

from __future__ import annotations

from bnsearch.tracking._tracker import (
    MlflowTracker,
    TrackingUnavailable,
    existing_experiment_id,
    relocate_artifacts,
    runs_url,
    ui_command,
    ui_environment,
)

__all__ = [
    "MlflowTracker",
    "TrackingUnavailable",
    "existing_experiment_id",
    "relocate_artifacts",
    "runs_url",
    "ui_command",
    "ui_environment",
]
