"""The Optuna backend: its storage, claims of paired blocks, heartbeats, retries and pruning."""

from __future__ import annotations

from bnsearch.backends.optuna._backend import OptunaBackend, OptunaStudyReader
from bnsearch.backends.optuna._claims import (
    blocks_to_complete,
    claim_lock,
)
from bnsearch.backends.optuna._storage import (
    is_outcome,
    load_existing_study,
    open_study,
    results_from_study,
    stored_result,
    stored_trials,
    study_importances,
)
from bnsearch.backends.optuna._your_objective import (
    MlflowCallback,
    paired_objective,
    study_verdict,
)

__all__ = [
    "MlflowCallback",
    "OptunaBackend",
    "OptunaStudyReader",
    "blocks_to_complete",
    "claim_lock",
    "is_outcome",
    "load_existing_study",
    "open_study",
    "paired_objective",
    "results_from_study",
    "stored_result",
    "stored_trials",
    "study_importances",
    "study_verdict",
]
