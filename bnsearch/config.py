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
from bnsearch.settings import PAIRED_TUNERS, check_settings
from bnsearch.space import SearchSpace
from bnsearch.tracking import DEFAULT_STORE_DIR, default_tracking_uri

__all__ = ["DEFAULT_N_TRIALS", "StudyConfig", "default_storage"]

# Trials added per run when --n-trials is not given, per engine: each fits the ~10 minute
# budget of the default study on 2 CPU cores.
DEFAULT_N_TRIALS = {"population": 256, "keras": 16}
DEFAULT_POPULATION = 64
# One path component that is not hidden, "." or "..": safe as a file or folder name.
_SAFE_NAME = re.compile(r"[A-Za-z0-9_\-][A-Za-z0-9_.\-]*")


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
    until: str = "settled"
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
    verbose: bool = True

    def __post_init__(self) -> None:
        # Keras Tuner's own search (hyperband, grid) trains through model.fit.
        fit_only = self.backend == "keras-tuner" and self.tuner not in PAIRED_TUNERS
        object.__setattr__(self, "engine", engine_for(self.engine, self.network, fit_only))
        if self.n_trials is None:
            object.__setattr__(self, "n_trials", DEFAULT_N_TRIALS.get(self.engine, 16))
        check_settings(self, "study")
        if self.study_name is not None and not _SAFE_NAME.fullmatch(self.study_name):
            raise ConfigError(
                f"study name {self.study_name!r} must be one file name: letters, digits, '.', "
                "'_' and '-', not starting with '.'; pick another --study-name."
            )
        grace_period, heartbeat_interval = self.grace_period, self.heartbeat_interval
        if heartbeat_interval >= grace_period:
            raise ConfigError(
                f"`grace_period > heartbeat_interval` must hold, but got ({grace_period=}, "
                f"{heartbeat_interval=}); a live trial would be failed between two heartbeats."
            )

    @property
    def resolved_study_name(self) -> str:
        if self.study_name:
            return self.study_name
        data = self.data or "synthetic"
        stem = re.sub(r"[^A-Za-z0-9_.\-]+", "-", Path(data.split(":")[-1]).stem)
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
            "until": self.until,
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
