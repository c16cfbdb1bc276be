"""The Optuna backend: an Optuna sampler and pruner decide what to try next, through the
paired-search loop (:mod:`bnsearch.backends._loop`) and its Optuna hooks (:mod:`._searcher`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from bnsearch._redact import redact_url
from bnsearch.backends._base import ResultCallback, StudyReader
from bnsearch.backends._budget import paired_budget, up_to_date_message
from bnsearch.backends._loop import run_paired_search
from bnsearch.backends.optuna._heartbeat import closed_message
from bnsearch.backends.optuna._searcher import OptunaSearcher, close_dead_trials, writing_storage
from bnsearch.backends.optuna._storage import (
    load_existing_study,
    open_study,
    results_from_study,
    search_trial_count,
    stored_trials,
    study_importances,
)
from bnsearch.config import StudyConfig
from bnsearch.data import Dataset
from bnsearch.engines import Engine
from bnsearch.stats import Verdict
from bnsearch.tracking import MlflowTracker
from bnsearch.trial import StoredTrials, TrialResult, keys


@dataclass
class OptunaBackend:
    """Paired blocks in an Optuna study (a SQLite file, or PostgreSQL shared by workers)."""

    config: StudyConfig
    dataset: Dataset
    engine: Engine
    tracker: MlflowTracker
    study: Any = field(default=None, init=False)
    _existing: int = field(default=0, init=False)

    name: ClassVar[str] = "Optuna"
    unpaired_reason: ClassVar[str | None] = None

    def open(self) -> list[str]:
        with writing_storage(self.config):
            self.study = open_study(self.config, self.dataset)
            stale = close_dead_trials(self.study, self.tracker)
        self._existing = len(self.study.trials)
        return [closed_message(stale)] if stale else []

    def store_tags(self) -> dict[str, str]:
        return {
            "optuna.study": self.study.study_name,
            "optuna.storage": redact_url(self.config.resolved_storage),
        }

    def existing_trials(self) -> int:
        return self._existing

    def up_to_date(self) -> str | None:
        results = results_from_study(self.study) if self.config.until == "settled" else []
        return up_to_date_message(self.config, search_trial_count(self.study), results)

    def budget(self) -> tuple[int, str]:
        have = 0 if self.config.target_trials is None else search_trial_count(self.study)
        return paired_budget(self.config, have)

    def results(self) -> list[TrialResult]:
        return results_from_study(self.study)

    def stored_trials(self) -> StoredTrials:
        return stored_trials(self.study)

    def importances(self) -> dict[str, float]:
        return study_importances(self.study)

    def record_verdict(self, verdict: Verdict) -> None:
        with writing_storage(self.config):  # both answers, for optuna-dashboard's study page
            for key, value in (
                (keys.VERDICT, verdict.statement),
                (keys.VERDICT_OUTCOME, verdict.outcome),
                (keys.VERDICT_BN, verdict.bn.outcome),
                (keys.VERDICT_HEADLINE, verdict.headline),
                (keys.VERDICT_BN_TEXT, verdict.bn.statement),
                (keys.VERDICT_PLACEMENT_TEXT, verdict.placement.statement),
            ):
                self.study.set_user_attr(key, value)

    @classmethod
    def prepare(cls, config: StudyConfig, dataset: Dataset) -> str:
        study = open_study(config, dataset)
        return f"{redact_url(config.resolved_storage)} ({len(study.trials)} trials)"

    @classmethod
    def read(cls, config: StudyConfig) -> StudyReader:
        study = load_existing_study(config)
        return StudyReader(
            tags={"optuna.study": study.study_name},
            data_fingerprint=str(study.user_attrs.get(keys.DATA_FINGERPRINT, "unknown")),
            unpaired_reason=None,
            no_ranking_reason=study.user_attrs.get(keys.NO_RANKING) or None,
            stored_trials=lambda: stored_trials(study),
            importances=lambda: study_importances(study),
        )

    def run(
        self, on_result: ResultCallback | None, log: Callable[[str], None]
    ) -> list[TrialResult]:
        searcher = OptunaSearcher(self.study, self.config, self.tracker)
        return run_paired_search(
            searcher, self.config, self.dataset, self.engine, self.tracker, on_result, log
        )
