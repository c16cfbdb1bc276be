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

if TYPE_CHECKING:
    from collections.abc import Callable

    from optuna.trial import BaseTrial, Trial

    from bnsearch.stats import Verdict
    from bnsearch.study import run_study

# Builders import ``bnsearch.blocks``, which lives in ``bnsearch.networks``.
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
    "MlflowCallback",
    "log_keras_tuner",
    "paired_objective",
    "paired_oracle_class",
    "rewrite",
    "suggest",
    "suggest_keras_tuner",
    "verdict",
]


# The study's verbs load MLflow and Optuna's storage, so they are imported on first use:
# ``import bnsearch`` stays light.


def __getattr__(name: str) -> Any:
    if name == "MlflowCallback":
        from bnsearch.backends.optuna import MlflowCallback

        return MlflowCallback
    if name == "run_study":
        from bnsearch.study import run_study

        return run_study
    raise AttributeError(f"module 'bnsearch' has no attribute {name!r}")


def __dir__() -> list[str]:
    # The lazy names too, so completion in a shell or notebook offers them.
    return sorted(set(globals()) | set(__all__))


def suggest(
    trial: BaseTrial, space: SearchSpace | None = None, placement: str | None = None
) -> BNConfig:
    """Take bnsearch's BN configuration from an Optuna trial of your own objective.

    Args:
        trial: an ``optuna.trial.Trial`` (or ``FixedTrial``) of your objective.
        space: the search space; bnsearch's default space if None.
        placement: pin the placement instead of suggesting it (as :func:`paired_objective`
            does for a block's other members).

    Returns:
        The validated configuration (placement, momentum, epsilon, ``use_bias``, dropout,
        learning rate), each suggested under its bnsearch name.

    Examples:
        >>> import optuna
        >>> import bnsearch
        >>> trial = optuna.trial.FixedTrial({"placement": "before", "use_bias": False,
        ...     "momentum": 0.99, "epsilon": 1e-3, "dropout": 0.5, "learning_rate": 0.1})
        >>> config = bnsearch.suggest(trial)
        >>> config.placement, config.momentum
        ('before', 0.99)
    """
    return (space or SearchSpace()).suggest(trial, placement)


def suggest_keras_tuner(hp: Any, space: SearchSpace | None = None) -> BNConfig:
    """Take bnsearch's BN configuration from Keras Tuner ``HyperParameters`` in a hypermodel.

    Args:
        hp: the ``keras_tuner.HyperParameters`` a hypermodel is called with.
        space: the search space; bnsearch's default space if None.

    Returns:
        The configuration, each value registered in ``hp`` under its bnsearch name.

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


def rewrite(model: Any, config: BNConfig, seed: int = 0) -> Any:
    """Your Keras model with ``config``'s BatchNormalization placement, by ``--model``'s rule.

    Each site (a Dense or Conv2D layer feeding a non-linearity) gets its BN where
    ``config.placement`` says, and loses its bias where a BN follows directly (unless
    ``config.use_bias``); BN layers already at a site are replaced, other layers kept. The
    docs' *Your model* guide states the rule.

    Args:
        model: a ``keras.Model`` (Sequential or functional), a ``.keras`` file, or
            ``module:name`` / ``file.py:name`` (a model or a function returning one).
        config: the configuration to place (e.g. from :func:`suggest`).
        seed: the seed of the new model's weights.

    Returns:
        A new, uncompiled ``keras.Model``; ``model`` is left as it is.

    Raises:
        ConfigError: the model cannot be read (no site, a shared layer...).

    Examples:
        >>> import keras
        >>> import bnsearch
        >>> inputs = keras.Input(shape=(14,))
        >>> hidden = keras.layers.Dense(64, activation="tanh")(inputs)
        >>> model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(hidden))
        >>> after = bnsearch.rewrite(model, bnsearch.BNConfig(placement="after"))
        >>> [type(layer).__name__ for layer in after.layers][1:4]
        ['Dense', 'Activation', 'BatchNormalization']
    """
    from bnsearch.networks import load_plan, plan_of_model, rewrite_model

    plan = load_plan(model) if isinstance(model, str) else plan_of_model("your model", model)
    return rewrite_model(plan, config, seed)


def paired_objective(
    train: Callable[[BNConfig, int], float], space: SearchSpace | None = None
) -> Callable[[Trial], float]:
    """An Optuna objective of your own training function whose trials form paired blocks.

    Each block's first trial takes its parameters from the sampler; the other placements
    follow with the same values and seed, so :func:`verdict` compares placements within
    blocks, as bnsearch's own studies do.

    Args:
        train: ``train(config, seed) -> float``: train your network for the
            :class:`BNConfig` with the block's seed and return its final validation loss.
        space: the search space; bnsearch's default space if None.

    Returns:
        The objective for ``study.optimize``; run a multiple of the placements (3 by
        default) to end on whole blocks.

    Examples:
        >>> import optuna
        >>> import bnsearch
        >>> def train(config, seed):  # stands in for your model.fit
        ...     return {"none": 0.7, "before": 0.5, "after": 0.6}[config.placement] + seed / 1e4
        >>> study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        >>> study.optimize(bnsearch.paired_objective(train), n_trials=6)
        >>> sorted(t.params["placement"] for t in study.trials[:3])
        ['after', 'before', 'none']
    """
    from bnsearch.backends.optuna import paired_objective as _paired_objective

    return _paired_objective(train, space)


def verdict(study: Any, threshold: float | None = None, until: str = "settled") -> Verdict:
    """Both answers for an Optuna study or a Keras Tuner search you ran yourself.

    Args:
        study: an ``optuna.Study`` of :func:`paired_objective`, or a Keras Tuner tuner
            with a :func:`paired_oracle_class` oracle and a hypermodel that uses
            :func:`suggest_keras_tuner` (read on the final epoch's ``val_loss``).
        threshold: the smallest difference that matters (0.01 by default).
        until: ``settled``: anytime-valid intervals, valid whenever read; ``budget``: the
            bootstrap interval and Wilcoxon test, read once at the end.

    Returns:
        A :class:`~bnsearch.stats.Verdict`: ``.headline``, ``.bn`` ("does BN help here?"),
        ``.placement`` ("before or after?") and every comparison in ``.pairs``.

    Raises:
        ConfigError: the study has no paired blocks (the message says how to make them).

    Examples:
        >>> import optuna
        >>> import bnsearch
        >>> def train(config, seed):  # before is 0.1 better than after, after than none
        ...     base = {"none": 0.8, "before": 0.6, "after": 0.7}[config.placement]
        ...     return base + (seed % 7) / 1e3
        >>> study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        >>> study.optimize(bnsearch.paired_objective(train), n_trials=30)
        >>> found = bnsearch.verdict(study)
        >>> print(found.bn.outcome, found.placement.outcome, found.settled)
        helps before True
    """
    if hasattr(study, "oracle"):  # a Keras Tuner tuner
        from bnsearch.backends.keras_tuner import tuner_verdict

        return tuner_verdict(study, threshold, until)
    from bnsearch.backends.optuna import study_verdict

    return study_verdict(study, threshold, until)


def paired_oracle_class(base: type) -> type:
    """A Keras Tuner oracle class whose trials form paired blocks, for :func:`verdict`.

    Each proposed configuration is followed by the same values with each other placement;
    give ``max_trials`` a multiple of the placements (3 by default).

    Args:
        base: a Keras Tuner oracle class (``RandomSearchOracle``, ...).

    Returns:
        The paired subclass, constructed as ``base`` and given to ``keras_tuner.Tuner``.

    Examples:
        >>> import keras_tuner
        >>> import bnsearch
        >>> Paired = bnsearch.paired_oracle_class(keras_tuner.oracles.RandomSearchOracle)
        >>> oracle = Paired(objective="val_loss", max_trials=6, seed=0)
        >>> Paired.__name__
        'PairedRandomSearchOracle'
    """
    from bnsearch.backends.keras_tuner import paired_oracle_class as _paired_oracle_class

    return _paired_oracle_class(base)


def log_keras_tuner(tuner: Any, tracking_uri: str | None = None) -> Any:
    """Log a Keras Tuner search to MLflow as bnsearch logs its own studies.

    A parent run named after the tuner's project, a child run per trial as it ends (its
    hyperparameters, per-epoch metrics and state: FINISHED, KILLED, FAILED), and the parent
    run ended with the verdict when the trials are paired. Call it before ``tuner.search``.

    Args:
        tuner: a Keras Tuner tuner whose hypermodel uses :func:`suggest_keras_tuner`.
        tracking_uri: the MLflow store (``sqlite:///mlruns/mlflow.db`` by default, or
            ``MLFLOW_TRACKING_URI``).

    Returns:
        The search's runs: ``.parent_run_id`` once the first trial ended.
    """
    from bnsearch.backends.keras_tuner import log_tuner

    return log_tuner(tuner, tracking_uri)
