"""The Keras Tuner backend: its paired oracle, its own searches and its project files."""

from __future__ import annotations

from bnsearch.backends.keras_tuner._adapter import make_keras_tuner_saves_atomic
from bnsearch.backends.keras_tuner._backend import (
    KerasTunerBackend,
    project_dir,
    results_from_project,
)

__all__ = [
    "KerasTunerBackend",
    "make_keras_tuner_saves_atomic",
    "project_dir",
    "results_from_project",
]
