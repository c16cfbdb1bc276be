"""Backends decide *what* to try next and keep the results; engines decide how to train it.

:func:`make_backend` picks one for a study, :func:`read_study` reads a study's store back."""

from __future__ import annotations

from bnsearch.backends._base import Backend, StudyReader
from bnsearch.backends._budget import batch_room, cannot_settle_notice
from bnsearch.backends.keras_tuner import KerasTunerBackend
from bnsearch.backends.optuna import OptunaBackend
from bnsearch.config import StudyConfig
from bnsearch.data import Dataset
from bnsearch.engines import Engine
from bnsearch.tracking import MlflowTracker

__all__ = [
    "Backend",
    "KerasTunerBackend",
    "OptunaBackend",
    "StudyReader",
    "backend_class",
    "batch_room",
    "cannot_settle_notice",
    "make_backend",
    "read_study",
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
