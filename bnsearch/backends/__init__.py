"""Backends decide *what* to try next and keep the results; engines decide how to train it.

Both backends implement :class:`Backend`; :func:`make_backend` picks one for a study.
"""

from __future__ import annotations

from collections.abc import Callable

from bnsearch._redact import redact_url
from bnsearch.backends._base import Backend, ResultCallback
from bnsearch.backends._budget import batch_room
from bnsearch.backends.keras_tuner import (
    KerasTunerBackend,
    project_dir,
    results_from_project,
)
from bnsearch.backends.optuna import (
    TAKEN_OVER,
    OptunaBackend,
    blocks_to_complete,
    claim_lock,
    is_outcome,
    load_existing_study,
    open_study,
    results_from_study,
    stored_result,
    stored_trials,
    study_importances,
)
from bnsearch.config import StudyConfig
from bnsearch.data import Dataset
from bnsearch.engines import Engine
from bnsearch.errors import ConfigError
from bnsearch.tracking import MlflowTracker
from bnsearch.trial import StoredTrials

__all__ = [
    "TAKEN_OVER",
    "Backend",
    "KerasTunerBackend",
    "OptunaBackend",
    "ResultCallback",
    "batch_room",
    "blocks_to_complete",
    "claim_lock",
    "is_outcome",
    "load_existing_study",
    "make_backend",
    "open_study",
    "project_dir",
    "results_from_project",
    "results_from_study",
    "stored_result",
    "stored_trials_reader",
    "study_importances",
]

_BACKENDS: dict[str, type] = {"optuna": OptunaBackend, "keras-tuner": KerasTunerBackend}


def make_backend(
    config: StudyConfig, dataset: Dataset, engine: Engine, tracker: MlflowTracker
) -> Backend:
    """The backend ``config.backend`` names (the setting's choices come from the same table)."""
    return _BACKENDS[config.backend](config, dataset, engine, tracker)


def stored_trials_reader(config: StudyConfig) -> Callable[[], StoredTrials]:
    """What an existing study's store holds, read afresh at each call, without opening the
    study for training (``sync``); a ConfigError if there is no such study."""
    if config.backend == "optuna":
        study = load_existing_study(config)
        return lambda: stored_trials(study)
    folder = project_dir(config)
    if not folder.is_dir():
        raise ConfigError(
            f"no Keras Tuner project for study {config.resolved_study_name!r} at {folder} "
            f"(tracking store {redact_url(config.resolved_tracking_uri)}); pass --study-name "
            "and --tracking-uri as the study was run."
        )
    return lambda: StoredTrials(results_from_project(folder))
