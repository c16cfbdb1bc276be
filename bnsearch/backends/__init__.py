"""Backends decide *what* to try next and keep the results; engines decide how to train it.

Both backends implement :class:`Backend`; :func:`make_backend` picks one for a study.
"""

from __future__ import annotations

from bnsearch.backends._base import Backend, ResultCallback
from bnsearch.backends._claims import blocks_to_complete, claim_lock
from bnsearch.backends._keras_tuner import (
    TRIALS_PER_PROCESS,
    KerasTunerBackend,
    project_dir,
    results_from_project,
)
from bnsearch.backends._optuna import TAKEN_OVER, OptunaBackend
from bnsearch.backends._storage import (
    is_outcome,
    load_existing_study,
    open_study,
    results_from_study,
    study_importances,
)
from bnsearch.config import StudyConfig
from bnsearch.data import Dataset
from bnsearch.engines import Engine
from bnsearch.tracking import MlflowTracker

__all__ = [
    "TAKEN_OVER",
    "TRIALS_PER_PROCESS",
    "Backend",
    "KerasTunerBackend",
    "OptunaBackend",
    "ResultCallback",
    "blocks_to_complete",
    "claim_lock",
    "is_outcome",
    "load_existing_study",
    "make_backend",
    "open_study",
    "project_dir",
    "results_from_project",
    "results_from_study",
    "study_importances",
]

_BACKENDS: dict[str, type] = {"optuna": OptunaBackend, "keras-tuner": KerasTunerBackend}


def make_backend(
    config: StudyConfig, dataset: Dataset, engine: Engine, tracker: MlflowTracker
) -> Backend:
    """The backend ``config.backend`` names (the setting's choices come from the same table)."""
    return _BACKENDS[config.backend](config, dataset, engine, tracker)
