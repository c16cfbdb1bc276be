"""The Optuna backend: its storage, claims of paired blocks, heartbeats, retries and pruning."""

from __future__ import annotations

from bnsearch.backends.optuna._backend import OptunaBackend
from bnsearch.backends.optuna._claims import blocks_to_complete, claim_lock
from bnsearch.backends.optuna._storage import (
    is_outcome,
    results_from_study,
    stored_result,
    study_importances,
)
from bnsearch.backends.optuna._your_objective import MlflowCallback, paired_objective, study_verdict

__all__ = [
    "MlflowCallback",
    "OptunaBackend",
    "blocks_to_complete",
    "claim_lock",
    "is_outcome",
    "paired_objective",
    "results_from_study",
    "stored_result",
    "study_importances",
    "study_verdict",
]
