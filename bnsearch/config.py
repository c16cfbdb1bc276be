"""StudyConfig: every setting of one study, from defaults, a study file and CLI flags."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bnsearch.analysis import DEFAULT_THRESHOLD
from bnsearch.engines import engine_for
from bnsearch.errors import ConfigError
from bnsearch.model import NetworkSettings
from bnsearch.settings import check_settings
from bnsearch.space import SearchSpace
from bnsearch.tracking import DEFAULT_STORE_DIR, default_tracking_uri

__all__ = ["DEFAULT_N_TRIALS", "StudyConfig", "default_storage"]

# Trials added per run when --n-trials is not given, per engine: each fits the ~10 minute
# budget of the default study on 2 CPU cores.
DEFAULT_N_TRIALS = {"population": 256, "keras": 16}
DEFAULT_POPULATION = 64


def default_storage(store_dir: Path = DEFAULT_STORE_DIR) -> str:
    return f"sqlite:///{store_dir / 'optuna.db'}"


@dataclass(frozen=True)
class StudyConfig:
    """What to study and how. Constructing one only validates; nothing runs until
    :func:`bnsearch.study.run_study`."""

    study_name: str | None = None
    data: str | None = None
    target: str | None = None
    standardize: bool = False
    n_trials: int | None = None
    target_trials: int | None = None
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
    metric: str = "val_loss"
    threshold: float = DEFAULT_THRESHOLD
    space: SearchSpace = field(default_factory=SearchSpace)
    network: NetworkSettings = field(default_factory=NetworkSettings)
    allow_changed_study: bool = False
    heartbeat_interval: int = 10
    grace_period: int = 60
    verbose: bool = True

    def __post_init__(self) -> None:
        # Keras Tuner trains through model.fit: the Keras engine is the only one it has.
        fit_only = self.backend == "keras-tuner"
        object.__setattr__(self, "engine", engine_for(self.engine, self.network, fit_only))
        if self.n_trials is None:
            object.__setattr__(self, "n_trials", DEFAULT_N_TRIALS.get(self.engine, 16))
        check_settings(self, "study")
        if self.study_name is not None and not re.fullmatch(r"[A-Za-z0-9_.\-]+", self.study_name):
            raise ConfigError(
                f"study name {self.study_name!r} may hold only letters, digits, '.', '_' and '-'."
            )

    @property
    def resolved_study_name(self) -> str:
        if self.study_name:
            return self.study_name
        data = self.data or "synthetic"
        stem = re.sub(r"[^A-Za-z0-9_.\-]+", "-", Path(data.split(":")[-1]).stem)
        return f"bnsearch-{stem}"

    @property
    def resolved_storage(self) -> str:
        return self.storage or default_storage()

    @property
    def resolved_tracking_uri(self) -> str:
        return self.tracking_uri or default_tracking_uri()

    def with_changes(self, **changes: Any) -> StudyConfig:
        return replace(self, **changes)

    def as_params(self) -> dict[str, Any]:
        """The settings a person wants to see on the study's parent run."""
        return {
            "study_name": self.resolved_study_name,
            "data": self.data or "synthetic",
            "target": self.target or "",
            "standardize": self.standardize,
            "n_trials": self.n_trials,
            "timeout": self.timeout or "",
            "seed": self.seed,
            "backend": self.backend,
            "tuner": self.tuner if self.backend == "keras-tuner" else "",
            "engine": self.engine,
            "population": self.population,
            "sampler": self.sampler,
            "pruner": self.pruner,
            "confirm_seeds": self.confirm_seeds,
            "metric": self.metric,
            "threshold": self.threshold,
            "space": self.space.as_dict(),
            **{f"network.{k}": v for k, v in self.network.as_params().items()},
        }
