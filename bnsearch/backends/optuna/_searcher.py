"""The Optuna backend's hooks of the paired-search loop (:mod:`bnsearch.backends._loop`).

A full disk under the storage is one :class:`~bnsearch.errors.StoreFullError` naming it: at
once from a claim or a tell, after the batch is told when a pruner's report met it (the
pruner then answers "no"). Trials it left RUNNING are failed by the next run at once
(:func:`close_dead_trials`) and retried in their blocks."""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import bnsearch.backends.optuna._adapter as adapter
from bnsearch._redact import redact_url
from bnsearch.backends._loop import Member, Pruner
from bnsearch.backends.optuna._ask import ask_confirmation
from bnsearch.backends.optuna._claims import claim_batch
from bnsearch.backends.optuna._heartbeat import (
    Heartbeat,
    close_stale_trials,
    closed_message,
    fail_runs,
)
from bnsearch.backends.optuna._pruning import EpochSnapshot
from bnsearch.backends.optuna._storage import RUN_ID_ATTR, results_from_study, search_trial_count
from bnsearch.config import StudyConfig
from bnsearch.errors import StoreFullError, full_disk, full_disk_message, naming_full_disk
from bnsearch.tracking import MlflowTracker
from bnsearch.trial import Phase, TrialResult, TrialState, keys, process_alive

if TYPE_CHECKING:
    import optuna

GONE_REASON = "stale: its process on this machine is gone"


def writing_storage(config: StudyConfig) -> contextlib.AbstractContextManager[None]:
    """Writes to the study's storage: a full disk under it is one line naming it."""
    url = config.resolved_storage
    return naming_full_disk(f"the Optuna storage {redact_url(url)}", url)


def close_dead_trials(study: optuna.Study, tracker: MlflowTracker) -> int:
    """Fail the trials a dead process left RUNNING and end their MLflow runs as FAILED; how
    many there were. A process of this machine that is gone (by ``bnsearch.worker``'s host
    and pid) loses its trials at once, any other by the heartbeat rule
    (:func:`~._heartbeat.close_stale_trials`); containers sharing a host name would be
    taken for each other: give them their own host names."""
    import optuna

    host, me = socket.gethostname(), os.getpid()
    gone = []
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        name, _, pid = str(trial.user_attrs.get(keys.WORKER, "")).rpartition(":")
        if name == host and pid.isdigit() and int(pid) != me and not process_alive(pid):
            gone.append(trial)
    for trial in gone:
        try:
            adapter.fail_trial(study, adapter.trial_id(trial))
        except Exception as error:
            if full_disk(error):
                raise
            # Another worker failed it first.
    fail_runs(tracker, gone, GONE_REASON)
    return len(gone) + close_stale_trials(study, tracker)


@dataclass
class OptunaSearcher:
    """The paired search's side that is Optuna's: an open study shared by any workers."""

    study: optuna.Study
    config: StudyConfig
    tracker: MlflowTracker
    #: A full disk a pruner's report met mid-batch, raised once the batch is told.
    _full: StoreFullError | None = field(default=None, init=False)

    def _writing(self) -> contextlib.AbstractContextManager[None]:
        return writing_storage(self.config)

    def stored_results(self) -> list[TrialResult]:
        return results_from_study(self.study)

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
        with self._writing():
            heartbeat = Heartbeat(self.study, [member.trial for member in members])
            heartbeat.__enter__()  # its first beats write to the storage
        try:
            yield
        finally:
            heartbeat.__exit__(None, None, None)

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
        store = f"the Optuna storage {redact_url(self.config.resolved_storage)}"

        def prune(member: Member, epoch: int, value: float) -> bool:
            if self._full is not None:
                return False
            try:
                return snapshot.should_prune(member.trial, epoch, value)
            except Exception as error:
                message = full_disk_message(error, store, self.config.resolved_storage)
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
            return any(r.to_json() == stored for r in results_from_study(study))
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
