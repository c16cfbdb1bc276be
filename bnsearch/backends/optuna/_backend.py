"""The Optuna backend: an Optuna sampler and pruner decide what to try next, through the
paired-search loop (:mod:`bnsearch.backends._loop`), whose hooks it implements.

A full disk under the storage is one :class:`~bnsearch.errors.StoreFullError` naming it: at
once from a claim or a tell, after the batch is told when a pruner's report met it (the
pruner then answers "no"). Trials it left RUNNING are failed by the next run at once
(:func:`~._heartbeat.close_dead_trials`) and retried in their blocks."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import bnsearch.backends.optuna._adapter as adapter
from bnsearch._redact import redact_url
from bnsearch.backends._base import StudyReader
from bnsearch.backends._loop import Member, PairedSearcher, Pruner
from bnsearch.backends.optuna._ask import ask_confirmation
from bnsearch.backends.optuna._claims import claim_batch
from bnsearch.backends.optuna._heartbeat import (
    beating,
    close_dead_trials,
    closed_message,
    first_beat,
)
from bnsearch.backends.optuna._pruning import EpochSnapshot
from bnsearch.backends.optuna._storage import (
    RUN_ID_ATTR,
    load_existing_study,
    open_study,
    results_from_study,
    search_trial_count,
    stored_trials,
    study_importances,
)
from bnsearch.config import StudyConfig
from bnsearch.data import Dataset
from bnsearch.errors import StoreFullError, full_disk_message, naming_full_disk
from bnsearch.stats import Verdict
from bnsearch.trial import Phase, StoredTrials, TrialResult, TrialState, keys


@dataclass
class OptunaBackend(PairedSearcher):
    """Paired blocks in an Optuna study (a SQLite file, or PostgreSQL shared by workers)."""

    study: Any = field(default=None, init=False)
    #: A full disk a pruner's report met mid-batch, raised once the batch is told.
    _full: StoreFullError | None = field(default=None, init=False)

    name: ClassVar[str] = "Optuna"
    unpaired_reason: ClassVar[str | None] = None

    def _store(self) -> str:
        return f"the Optuna storage {redact_url(self.config.resolved_storage)}"

    def _writing(self) -> contextlib.AbstractContextManager[None]:
        """Writes to the study's storage: a full disk under it is one line naming it."""
        return naming_full_disk(self._store(), self.config.resolved_storage)

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
        """Every worker's search trials with an outcome or in flight."""
        return search_trial_count(self.study)

    def reclaim(self) -> str | None:
        with self._writing():
            closed = close_dead_trials(self.study, self.tracker)
        return closed_message(closed) if closed else None

    def ask_batch(self, room: int, wanted: int | None) -> list[Member]:
        with self._writing():
            return claim_batch(self.study, self.config, room, wanted)

    def others_running(self) -> bool:
        import optuna

        running = self.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
        return any(t.user_attrs.get(keys.PHASE, Phase.SEARCH) == Phase.SEARCH for t in running)

    def ask_confirmation(self, best: list[TrialResult]) -> list[Member]:
        with self._writing():
            return ask_confirmation(self.study, self.config, best)

    @contextlib.contextmanager
    def in_flight(self, members: list[Member]) -> Iterator[None]:
        ids = [adapter.trial_id(member.trial) for member in members]
        with self._writing():
            for trial_id in ids:
                first_beat(self.study, trial_id)
        with beating(self.study, ids):
            yield

    def run_tags(self, member: Member) -> dict[str, str]:
        tags = {"optuna.study": self.study.study_name, keys.PHASE: member.spec.phase}
        retried = member.trial.user_attrs.get(keys.RETRIES_TRIAL)
        if retried is not None:
            tags[keys.RETRIES_TRIAL] = str(retried)
        return tags

    def started(self, member: Member, run_id: str | None) -> None:
        with self._writing():
            if run_id is not None:
                member.trial.set_user_attr(RUN_ID_ATTR, run_id)
            member.trial.set_user_attr(keys.PARENT_RUN, self.tracker.parent_run_id or "")

    def pruner(self) -> Pruner:
        """Optuna's pruner; a report refused by a full disk answers "no" (raised once told)."""
        snapshot = EpochSnapshot(self.study)

        def prune(member: Member, epoch: int, value: float) -> bool:
            if self._full is not None:
                return False
            try:
                return snapshot.should_prune(member.trial, epoch, value)
            except Exception as error:
                message = full_disk_message(error, self._store(), self.config.resolved_storage)
                if message is None:
                    raise
                self._full = StoreFullError(message)
                return False

        return prune

    def tell(self, member: Member, result: TrialResult) -> bool:
        """Store the result on the trial and tell Optuna; False when another process had
        already failed the trial as stale (Optuna refuses to change a finished trial)."""
        import optuna

        study, trial = self.study, member.trial
        stored = result.to_json()
        try:
            with self._writing():
                adapter.set_trial_system_attr(study, trial, keys.RESULT, stored)
                if result.state is TrialState.FAILED:
                    trial.set_user_attr("fail_reason", result.fail_reason or "unknown")
                if result.state is TrialState.COMPLETE:
                    study.tell(trial, result.value)
                elif result.state is TrialState.PRUNED:
                    study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                else:
                    study.tell(trial, state=optuna.trial.TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            # A retried tell whose first try had landed (a dropped connection) finds our own
            # result in place; a trial taken over does not.
            return any(r.to_json() == stored for r in self.results())
        return True

    def batch_told(self, members: list[Member]) -> None:
        """Each tell is in the study already; a full disk a pruner met is raised now."""
        if (full := self._full) is not None:
            self._full = None
            raise full

    def abandon(self, members: list[Member]) -> str:
        """Fail the batch's trials in Optuna (retried by the next run); a storage that is
        away as well must not hide the first error."""
        import optuna

        with contextlib.suppress(Exception):
            for member in members:
                self.study.tell(
                    member.trial, state=optuna.trial.TrialState.FAIL, skip_if_finished=True
                )
        n = len(members)
        what = "the trial in flight was" if n == 1 else f"the {n} trials in flight were"
        return f"{what} marked failed and the next run retries them"
