"""StudyConfig: every setting of one study, from defaults, a study file and CLI flags."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from bnsearch.config._settings import (
    DEFAULT_N_TRIALS,
    DEFAULT_POPULATION,
    DEFAULT_STORAGE,
    DEFAULT_THRESHOLD,
    PAIRED_TUNERS,
    check_settings,
    default_tracking_uri,
)
from bnsearch.data import dataset_name
from bnsearch.errors import ConfigError
from bnsearch.networks import NetworkSettings
from bnsearch.trial import SearchSpace

# One path component that is not hidden, "." or "..": safe as a file or folder name.
_SAFE_NAME = re.compile(r"[A-Za-z0-9_\-][A-Za-z0-9_.\-]*")


@dataclass(frozen=True)
class StudyConfig:
    """What to study and how, as asked. Constructing one only validates (it never rewrites
    a field); nothing runs until :func:`bnsearch.run_study`.

    Two values are asked for here and decided later, where the knowledge lives:
    ``engine`` is the engine asked for (:func:`bnsearch.engines.resolve` falls back to the
    Keras engine for a network the population engine cannot train), and ``n_trials=None``
    means the engine's default budget (:attr:`trials_per_run`).

    Every field but the four below is one setting of the docs' *Commands and settings*
    reference, which gives its flag, its study-file key, its default and its rule; the
    field's name is the key's (``--n-trials`` is ``n_trials``; ``--study-name`` is
    ``study_name``, the file's ``name``).

    Attributes:
        space: the search space (a study file's ``[space]`` table).
        network: the network and its training (a study file's ``[network]`` table).
        verbose: print progress lines and the summary (``--quiet`` turns it off).
        details: the summary gives the verdict's full statistics (``--verbose``).

    Raises:
        ConfigError: a setting is out of its range or not one of its choices, or two
            settings contradict each other (the message names the fix).

    Examples:
        >>> import bnsearch
        >>> config = bnsearch.StudyConfig(data="sklearn:breast_cancer", until="budget",
        ...     network=bnsearch.NetworkSettings(epochs=5))
        >>> config.resolved_study_name, config.trials_per_run
        ('bnsearch-breast_cancer', 256)
        >>> bnsearch.StudyConfig(until="forever")
        Traceback (most recent call last):
        ...
        bnsearch.errors.ConfigError: unknown until 'forever'; choose one of settled, budget.
    """

    study_name: str | None = None
    data: str | None = None
    target: str | None = None
    standardize: bool = False
    shuffle: bool = False
    task: str = "auto"
    n_trials: int | None = None
    target_trials: int | None = None
    until: str = "settled"
    question: str = "both"
    timeout: float | None = None
    seed: int = 0
    storage: str | None = None
    tracking_uri: str | None = None
    backend: str = "optuna"
    tuner: str = "random"
    engine: str = "population"
    population: int = DEFAULT_POPULATION
    sampler: str = "tpe"
    pruner: str = "none"
    confirm_seeds: int = 5
    keep_models: bool = False
    metric: str = "val_loss"
    threshold: float = DEFAULT_THRESHOLD
    space: SearchSpace = field(default_factory=SearchSpace)
    network: NetworkSettings = field(default_factory=NetworkSettings)
    allow_changed_study: bool = False
    heartbeat_interval: int = 10
    grace_period: int = 60
    verbose: bool = True  # progress lines and the summary (off: --quiet)
    details: bool = False  # the verdict's full statistics in the summary (--verbose)

    def __post_init__(self) -> None:
        check_settings(self, "study")
        if self.study_name is not None and not _SAFE_NAME.fullmatch(self.study_name):
            raise ConfigError(
                f"study name {self.study_name!r} must be one file name: letters, digits, '.', "
                "'_' and '-', not starting with '.'; pick another --study-name."
            )
        if self.task == "regression" and self.metric == "val_accuracy":
            raise ConfigError(
                "a regression has no accuracy (its second metric is the mean absolute "
                "error); compare placements on --metric val_loss."
            )
        if self.question == "bn" and "none" not in self.space.placement:
            raise ConfigError(
                "--question bn asks whether BN helps against `none`, but the placements "
                f"({', '.join(self.space.placement)}) leave it out; add none to --placements."
            )
        grace_period, heartbeat_interval = self.grace_period, self.heartbeat_interval
        if heartbeat_interval >= grace_period:
            raise ConfigError(
                f"`grace_period > heartbeat_interval` must hold, but got ({grace_period=}, "
                f"{heartbeat_interval=}); a live trial would be failed between two heartbeats."
            )

    @property
    def trials_per_run(self) -> int:
        """``n_trials``, or the engine's default budget when it was not given."""
        if self.n_trials is not None:
            return self.n_trials
        return DEFAULT_N_TRIALS.get(self.engine, DEFAULT_N_TRIALS["keras"])

    @property
    def fit_only(self) -> bool:
        """Keras Tuner's own search (hyperband, grid) trains through ``model.fit``."""
        return self.backend == "keras-tuner" and self.tuner not in PAIRED_TUNERS

    @property
    def resolved_study_name(self) -> str:
        if self.study_name:
            return self.study_name
        stem = re.sub(r"[^A-Za-z0-9_.\-]+", "-", dataset_name(self.data))
        return f"bnsearch-{stem}"

    def path_under(self, root: Path, suffix: str = "") -> Path:
        """``root/<study name><suffix>``, checked to lie inside ``root`` (the one place a
        study name becomes a path, so no name can reach outside its folder)."""
        path = root / f"{self.resolved_study_name}{suffix}"
        if path.resolve().parent != root.resolve():
            raise ConfigError(
                f"study name {self.resolved_study_name!r} does not name a file inside {root}; "
                "pick another --study-name."
            )
        return path

    @property
    def resolved_storage(self) -> str:
        return self.storage or DEFAULT_STORAGE

    @property
    def resolved_tracking_uri(self) -> str:
        return self.tracking_uri or default_tracking_uri()

    def with_changes(self, **changes: Any) -> StudyConfig:
        return replace(self, **changes)

    def as_params(self) -> dict[str, Any]:
        """The settings a person wants to see on the study's parent run."""
        params = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in _UNSHOWN}
        return {
            **params,
            "study_name": self.resolved_study_name,
            "data": self.data or "synthetic",
            "target": self.target or "",
            "n_trials": self.trials_per_run,
            "timeout": self.timeout or "",
            "tuner": self.tuner if self.backend == "keras-tuner" else "",
            "space": self.space.as_dict(),
            **{f"network.{k}": v for k, v in self.network.as_params().items()},
        }


#: The fields :meth:`StudyConfig.as_params` leaves off the parent run.
_UNSHOWN: tuple[str, ...] = ("target_trials", "storage", "tracking_uri", "keep_models", "network")
_UNSHOWN += ("allow_changed_study", "heartbeat_interval", "grace_period", "verbose", "details")
