"""bnsearch: does BatchNormalization placement matter for your data? Test it, rigorously.

The search space and the network builder are a Python API as well as a CLI: take a
configuration in your own Optuna objective (:func:`suggest`) or Keras Tuner hypermodel
(:func:`suggest_keras_tuner`), build its network (:func:`build_model`), or run a whole
study (:func:`run_study`). The docs' *Python API* page lists each with an example.
"""

from __future__ import annotations

import sys
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from bnsearch.config import StudyConfig
from bnsearch.data import Dataset, load_dataset
from bnsearch.errors import BnsearchError, ConfigError, DataError, StoreError, StudyFailedError
from bnsearch.networks import NetworkSettings, blocks, build_model
from bnsearch.trial import BNConfig, SearchSpace, TrialResult, TrialSpec, TrialState

if TYPE_CHECKING:  # the study's verbs load MLflow and Optuna's storage: only when run
    from bnsearch.study import StudyOutcome

# Builders import ``bnsearch.blocks``; the module lives in ``bnsearch.networks``, and this
# alias makes ``from bnsearch.blocks import dense_block`` find it.
sys.modules[f"{__name__}.blocks"] = blocks

try:
    __version__ = version("bnsearch")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

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
    """Take bnsearch's BN configuration from an Optuna trial of your own objective.

    Args:
        trial: an ``optuna.trial.Trial`` (or ``FixedTrial``) of your objective.
        space: the search space; bnsearch's default space (the thread's question) if None.

    Returns:
        The trial's validated configuration: placement, BN momentum, epsilon, ``use_bias``,
        dropout and learning rate, each suggested under its bnsearch name.

    Examples:
        >>> import optuna
        >>> import bnsearch
        >>> trial = optuna.trial.FixedTrial({"placement": "before", "use_bias": False,
        ...     "momentum": 0.99, "epsilon": 1e-3, "dropout": 0.5, "learning_rate": 0.1})
        >>> config = bnsearch.suggest(trial)
        >>> config.placement, config.momentum
        ('before', 0.99)
    """
    return (space or SearchSpace()).suggest(trial)


def suggest_keras_tuner(hp: Any, space: SearchSpace | None = None) -> BNConfig:
    """Take bnsearch's BN configuration from Keras Tuner ``HyperParameters`` in a hypermodel.

    Args:
        hp: the ``keras_tuner.HyperParameters`` a hypermodel is called with.
        space: the search space; bnsearch's default space if None.

    Returns:
        The configuration those hyperparameters hold (each registered in ``hp`` under its
        bnsearch name, so the tuner searches it).

    Examples:
        >>> import keras_tuner
        >>> import bnsearch
        >>> hp = keras_tuner.HyperParameters()
        >>> config = bnsearch.suggest_keras_tuner(hp)
        >>> config.placement in ("none", "before", "after")
        True
        >>> "placement" in hp.values
        True
    """
    return (space or SearchSpace()).from_keras_tuner(hp)


def run_study(config: StudyConfig) -> StudyOutcome:
    """Run (or resume) a study as ``python -m bnsearch study`` does.

    Args:
        config: the study's settings (the same as the CLI's flags and a study file's keys).

    Returns:
        The outcome: the trials this run added and all of them, the table per placement,
        the verdict, and where it was logged (the parent run's id, the MLflow URI).

    Raises:
        ConfigError: a setting, the data or a store cannot be used (the message names the
            fix).
        StudyFailedError: every trial of the run failed.

    Examples:
        >>> import os, tempfile
        >>> import bnsearch
        >>> os.chdir(tempfile.mkdtemp())  # its stores go to ./mlruns
        >>> outcome = bnsearch.run_study(bnsearch.StudyConfig(
        ...     n_trials=3, confirm_seeds=0, verbose=False, until="budget",
        ...     network=bnsearch.NetworkSettings(epochs=1, hidden_units=(4,))))
        >>> len(outcome.new_results), outcome.verdict.placement.outcome
        (3, 'insufficient')
    """
    # Imported on call: ``import bnsearch`` (the space and the builder, for your own
    # objective) should not load Optuna's storage, MLflow and both backends.
    from bnsearch.study import run_study as _run_study

    return _run_study(config)
