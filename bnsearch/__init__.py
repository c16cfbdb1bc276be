"""bnsearch: does BatchNormalization placement matter for your data? Test it, rigorously.

The search space and the network builder are a Python API as well as a CLI::

    import optuna, bnsearch

    def objective(trial):
        config = bnsearch.suggest(trial)              # a validated BNConfig
        model = bnsearch.build_model(config, input_shape=14, n_classes=2)
        ...
"""

from __future__ import annotations

from typing import Any

from bnsearch.config import StudyConfig
from bnsearch.data import Dataset, load_dataset
from bnsearch.errors import BnsearchError, ConfigError, DataError, StoreError, StudyFailedError
from bnsearch.model import NetworkSettings, build_model
from bnsearch.results import TrialResult, TrialSpec, TrialState
from bnsearch.space import BNConfig, SearchSpace

__all__ = [
    "BNConfig",
    "BnsearchError",
    "ConfigError",
    "DataError",
    "Dataset",
    "NetworkSettings",
    "SearchSpace",
    "StoreError",
    "StudyConfig",
    "StudyFailedError",
    "TrialResult",
    "TrialSpec",
    "TrialState",
    "build_model",
    "load_dataset",
    "run_study",
    "suggest",
    "suggest_keras_tuner",
]


def suggest(trial: Any, space: SearchSpace | None = None) -> BNConfig:
    """Take bnsearch's BN configuration from an Optuna trial of your own objective."""
    return (space or SearchSpace()).suggest(trial)


def suggest_keras_tuner(hp: Any, space: SearchSpace | None = None) -> BNConfig:
    """Take bnsearch's BN configuration from Keras Tuner ``HyperParameters`` in a hypermodel."""
    return (space or SearchSpace()).from_keras_tuner(hp)


def run_study(config: StudyConfig) -> Any:
    """Run a study (see :func:`bnsearch.study.run_study`)."""
    from bnsearch.study import run_study as _run_study

    return _run_study(config)
