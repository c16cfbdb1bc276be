"""The Optuna backend: an Optuna sampler and pruner decide what to try next, through the
paired-search loop (:mod:`bnsearch.backends._loop`).

A full disk under the storage is one StoreFullError naming it: at once from a claim or a
tell, after the batch is told when a pruner's report met it."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Container, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, cast

import bnsearch.backends.optuna._adapter as adapter
from bnsearch._redact import redact_url
from bnsearch.backends._base import StudyReader
from bnsearch.backends._loop import Member, PairedSearcher, Pruner, confirmation_specs
from bnsearch.backends.optuna._claims import (
    beating,
    claim_batch,
    claim_trial,
    close_dead_trials,
    first_beat,
)
from bnsearch.backends.optuna._storage import (
    load_existing_study,
    open_study,
    probe_storage,
    results_from_study,
    search_trial_count,
    stored_trials,
    study_importances,
)
from bnsearch.config import StudyConfig
from bnsearch.data import Dataset
from bnsearch.errors import StoreFullError, naming_full_disk
from bnsearch.stats import Verdict
from bnsearch.trial import Phase, StoredTrials, TrialResult, TrialState, keys

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial


@dataclass
class OptunaBackend(PairedSearcher):
    """Paired blocks in an Optuna study (a SQLite file, or PostgreSQL shared by workers)."""

    study: Any = field(default=None, init=False)
    #: A full disk a pruner's report met mid-batch, raised once the batch is told.
    _full: StoreFullError | None = field(default=None, init=False)

    name: ClassVar[str] = "Optuna"
    unpaired_reason: ClassVar[str | None] = None

    def _writing(self) -> contextlib.AbstractContextManager[None]:
        url = self.config.resolved_storage
        return naming_full_disk(f"the Optuna storage {redact_url(url)}", url)

    def open(self) -> list[str]:
        with self._writing():
            self.study = open_study(self.config, self.dataset)
        self._existing = len(self.study.trials)
        return [notice] if (notice := self.reclaim()) else []

    def store_tags(self) -> dict[str, str]:
        return {
            "optuna.study": self.study.study_name,
            "optuna.storage": redact_url(self.config.resolved_storage),
        }

    def results(self) -> list[TrialResult]:
        return results_from_study(self.study)

    def stored_trials(self) -> StoredTrials:
        return stored_trials(self.study)

    def importances(self) -> dict[str, float]:
        return study_importances(self.study)

    def record_verdict(self, verdict: Verdict) -> None:
        with self._writing():  # both answers, for optuna-dashboard's study page
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
    def probe(cls, config: StudyConfig) -> None:
        probe_storage(config)

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

    # The paired search's hooks (PairedSearcher), on the study shared by any workers.

    def search_trials(self) -> int:
        return search_trial_count(self.study.get_trials(deepcopy=False))

    def reclaim(self) -> str | None:
        with self._writing():
            closed = close_dead_trials(self.study, self.tracker)
        if not closed:
            return None
        return (
            f"bnsearch: closed {closed} trial(s) left RUNNING by a process that died; they are "
            "marked FAILED in Optuna and MLflow and will be retried."
        )

    def ask_batch(self, room: int, wanted: int | None) -> list[Member]:
        with self._writing():
            return claim_batch(self.study, self.config, room, wanted)

    def others_running(self) -> bool:
        import optuna

        running = self.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
        return any(t.user_attrs.get(keys.PHASE, Phase.SEARCH) == Phase.SEARCH for t in running)

    def ask_confirmation(self, best: list[TrialResult]) -> list[Member]:
        study = self.study
        with self._writing():
            trials = study.get_trials(deepcopy=False)
            round_id = len(trials)
            distributions = next(t.distributions for t in trials if "placement" in t.params)
            return [
                claim_trial(
                    study, s.config.as_params(), distributions, s.seed, round_id, phase=s.phase
                )
                for s in confirmation_specs(self.config, round_id, best)
            ]

    @contextlib.contextmanager
    def in_flight(self, members: list[Member]) -> Iterator[None]:
        with self._writing():
            for member in members:
                first_beat(self.study, adapter.trial_id(member.trial))
        with beating(self.study, members):
            yield

    def run_tags(self, member: Member) -> dict[str, str]:
        tags = {"optuna.study": self.study.study_name, keys.PHASE: member.spec.phase}
        if (retried := member.trial.user_attrs.get(keys.RETRIES_TRIAL)) is not None:
            tags[keys.RETRIES_TRIAL] = str(retried)
        return tags

    def started(self, member: Member, run_id: str | None) -> None:
        with self._writing():
            if run_id is not None:
                member.trial.set_user_attr("mlflow_run_id", run_id)
            member.trial.set_user_attr(keys.PARENT_RUN, self.tracker.parent_run_id or "")

    def pruner(self) -> Pruner:
        """Optuna's pruner; a report refused by a full disk answers "no" (raised once told)."""
        snapshot = EpochSnapshot(self.study)

        def prune(member: Member, epoch: int, value: float) -> bool:
            if self._full is not None:
                return False
            try:
                with self._writing():
                    return snapshot.should_prune(member.trial, epoch, value)
            except StoreFullError as full:
                self._full = full
                return False

        return prune

    def tell(self, member: Member, result: TrialResult) -> bool:
        """False when another process had already failed the trial as stale."""
        import optuna

        study, trial = self.study, member.trial
        stored = result.to_json()
        optuna_state = optuna.trial.TrialState
        # COMPLETE: no state, so Optuna fails a value it cannot take as it would in optimize.
        state = {TrialState.PRUNED: optuna_state.PRUNED, TrialState.FAILED: optuna_state.FAIL}
        try:
            with self._writing():
                adapter.set_trial_system_attr(study, trial, keys.RESULT, stored)
                if result.state is TrialState.FAILED:
                    trial.set_user_attr("fail_reason", result.fail_reason or "unknown")
                study.tell(trial, result.value, state=state.get(result.state))
        except optuna.exceptions.UpdateFinishedTrialError:
            # A retried tell whose first try had landed (a dropped connection) finds our own
            # result in place; a trial taken over does not.
            return any(r.to_json() == stored for r in self.results())
        return True

    def batch_told(self, members: list[Member]) -> None:
        if (full := self._full) is not None:
            self._full = None
            raise full

    def abandon(self, members: list[Member]) -> str:
        """Fail the batch's trials (retried by the next run), hiding no first error."""
        import optuna

        with contextlib.suppress(Exception):
            for member in members:
                self.study.tell(
                    member.trial, state=optuna.trial.TrialState.FAIL, skip_if_finished=True
                )
        n = len(members)
        what = "the trial in flight was" if n == 1 else f"the {n} trials in flight were"
        return f"{what} marked failed and the next run retries them"


class EpochSnapshot:
    """A study stand-in for pruners that answers ``get_trials`` from one snapshot per epoch
    (pruners compare with *finished* trials, which cannot change during one round)."""

    def __init__(self, study: optuna.Study) -> None:
        self._study = study
        self._epoch: int | None = None
        self._trials: list[FrozenTrial] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)

    def get_trials(
        self, deepcopy: bool = True, states: Container[optuna.trial.TrialState] | None = None
    ) -> list[FrozenTrial]:
        trials = self._trials if states is None else [t for t in self._trials if t.state in states]
        return copy.deepcopy(trials) if deepcopy else list(trials)

    def should_prune(self, trial: optuna.Trial, epoch: int, value: float) -> bool:
        trial.report(value, epoch)
        if epoch != self._epoch:
            self._epoch = epoch
            self._trials = self._study.get_trials(deepcopy=False)
        # A snapshot per batch (pruner()), taken once its trials exist: each is in it.
        current = copy.copy(next(t for t in self._trials if t.number == trial.number))
        current.intermediate_values = {**current.intermediate_values, epoch: value}
        return bool(self._study.pruner.prune(cast("optuna.Study", self), current))
