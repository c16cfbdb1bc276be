"""The Keras Tuner backend: its paired oracle, its own searches and its project files."""

from __future__ import annotations

from bnsearch.backends.keras_tuner._backend import KerasTunerBackend, project_dir
from bnsearch.backends.keras_tuner._files import results_from_project
from bnsearch.backends.keras_tuner._your_tuner import log_tuner, paired_oracle_class, tuner_verdict

__all__ = [
    "KerasTunerBackend",
    "project_dir",
    "log_tuner",
    "paired_oracle_class",
    "results_from_project",
    "tuner_verdict",
]
