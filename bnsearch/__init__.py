"""bnsearch: does BatchNormalization placement matter for your data? Test it, rigorously.

The search space and the network builder are a Python API as well as a CLI::

    import optuna, bnsearch

    def objective(trial):
        config = bnsearch.suggest(trial)              # a validated BNConfig
        model = bnsearch.build_model(config, input_shape=14, n_classes=2)
        ...
"""

from __future__ import annotations

import sys
from typing import Any

from bnsearch.config import StudyConfig
from bnsearch.data import Dataset, load_dataset
from bnsearch.errors import BnsearchError, ConfigError, DataError, StoreError, StudyFailedError
from bnsearch.networks import NetworkSettings, blocks, build_model
from bnsearch.trial import BNConfig, SearchSpace, TrialResult, TrialSpec, TrialState

# ``bnsearch.blocks`` was a module of its own and is what builders import; it lives in
# ``bnsearch.networks`` now, and this keeps ``from bnsearch.blocks import dense_block`` working.
sys.modules[f"{__name__}.blocks"] = blocks

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
    "blocks",
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
    # Imported on call: ``import bnsearch`` (the space and the builder, for your own
    # objective) should not load Optuna's storage, MLflow and both backends.
    from bnsearch.study import run_study as _run_study

    return _run_study(config)
