"""Backends decide *what* to try next and keep the results; engines decide how to train it.

Both backends implement :class:`Backend` and run the one paired-search loop
(:func:`run_paired_search`) with hooks of their own (:class:`PairedSearcher`);
:func:`make_backend` picks one for a study, :func:`read_study` reads an existing study's
store back without training.
"""

from __future__ import annotations

from collections.abc import Callable

from bnsearch.backends._base import Backend, ResultCallback, StudyReader
from bnsearch.backends._budget import batch_room, cannot_settle_notice
from bnsearch.backends._loop import TAKEN_OVER, Member, PairedSearcher, run_paired_search
from bnsearch.backends.keras_tuner import (
    KerasTunerBackend,
    project_dir,
    results_from_project,
)
from bnsearch.backends.optuna import (
    OptunaBackend,
    blocks_to_complete,
    claim_lock,
    is_outcome,
    load_existing_study,
    open_study,
    results_from_study,
    stored_result,
    study_importances,
)
from bnsearch.config import StudyConfig
from bnsearch.data import Dataset
from bnsearch.engines import Engine
from bnsearch.tracking import MlflowTracker
from bnsearch.trial import StoredTrials

__all__ = [
    "TAKEN_OVER",
    "Backend",
    "KerasTunerBackend",
    "Member",
    "OptunaBackend",
    "PairedSearcher",
    "ResultCallback",
    "StudyReader",
    "backend_class",
    "batch_room",
    "blocks_to_complete",
    "cannot_settle_notice",
    "claim_lock",
    "is_outcome",
    "load_existing_study",
    "make_backend",
    "open_study",
    "project_dir",
    "read_study",
    "results_from_project",
    "results_from_study",
    "run_paired_search",
    "stored_result",
    "stored_trials_reader",
    "study_importances",
]

_BACKENDS: dict[str, type[Backend]] = {
    "optuna": OptunaBackend,
    "keras-tuner": KerasTunerBackend,
}


def backend_class(config: StudyConfig) -> type[Backend]:
    """The backend ``config.backend`` names (the setting's choices come from the same table)."""
    return _BACKENDS[config.backend]


def make_backend(
    config: StudyConfig, dataset: Dataset, engine: Engine, tracker: MlflowTracker
) -> Backend:
    """The study's backend, ready to :meth:`~Backend.open`."""
    return backend_class(config)(config, dataset, engine, tracker)


def read_study(config: StudyConfig) -> StudyReader:
    """An existing study's store, read back without opening it for training; a ConfigError
    if there is no such study."""
    return backend_class(config).read(config)


def stored_trials_reader(config: StudyConfig) -> Callable[[], StoredTrials]:
    """What an existing study's store holds, read afresh at each call (``sync``)."""
    return read_study(config).stored_trials
