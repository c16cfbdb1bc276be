"""The Optuna backend's hooks of the paired-search loop (:mod:`bnsearch.backends._loop`).

Claims of whole blocks under the study's claim lock (:mod:`._claims`), heartbeats and the
stale trials of dead processes (:mod:`._heartbeat`), the pruner asked once per epoch round
(:mod:`._pruning`), and telling Optuna each outcome with its TrialResult stored on the trial.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import bnsearch.backends.optuna._adapter as adapter
from bnsearch.backends._loop import Member, Pruner
from bnsearch.backends.optuna._ask import ask_confirmation
from bnsearch.backends.optuna._claims import claim_batch
from bnsearch.backends.optuna._heartbeat import Heartbeat, close_stale_trials, closed_message
from bnsearch.backends.optuna._pruning import EpochSnapshot
from bnsearch.backends.optuna._storage import (
    RESULT_ATTR,
    RUN_ID_ATTR,
    results_from_study,
    search_trial_count,
)
from bnsearch.config import StudyConfig
from bnsearch.tracking import MlflowTracker
from bnsearch.trial import Phase, TrialResult, TrialState, keys

__all__ = ["OptunaSearcher"]


@dataclass
class OptunaSearcher:
    """The paired search's side that is Optuna's: an open study shared by any workers."""

    study: Any
    config: StudyConfig
    tracker: MlflowTracker

    def stored_results(self) -> list[TrialResult]:
        return results_from_study(self.study)

    def search_trials(self) -> int:
        """Every worker's search trials with an outcome or in flight."""
        return search_trial_count(self.study)

    def reclaim(self) -> str | None:
        closed = close_stale_trials(self.study, self.tracker)
        return closed_message(closed) if closed else None

    def ask_batch(self, room: int, wanted: int | None) -> list[Member]:
        return claim_batch(self.study, self.config, room, wanted)

    def others_running(self) -> bool:
        import optuna

        running = self.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
        return any(t.user_attrs.get(keys.PHASE, Phase.SEARCH) == Phase.SEARCH for t in running)

    def ask_confirmation(self, best: list[TrialResult]) -> list[Member]:
        return ask_confirmation(self.study, self.config, best)

    def in_flight(self, members: list[Member]) -> Heartbeat:
        return Heartbeat(self.study, [member.trial for member in members])

    def run_tags(self, member: Member) -> dict[str, str]:
        tags = {"optuna.study": self.study.study_name, keys.PHASE: member.spec.phase}
        retried = member.trial.user_attrs.get(keys.RETRIES_TRIAL)
        if retried is not None:
            tags[keys.RETRIES_TRIAL] = str(retried)
        return tags

    def started(self, member: Member, run_id: str | None) -> None:
        if run_id is not None:
            member.trial.set_user_attr(RUN_ID_ATTR, run_id)
        member.trial.set_user_attr(keys.PARENT_RUN, self.tracker.parent_run_id or "")

    def pruner(self) -> Pruner:
        snapshot = EpochSnapshot(self.study)
        return lambda member, epoch, value: snapshot.should_prune(member.trial, epoch, value)

    def tell(self, member: Member, result: TrialResult) -> bool:
        """Store the result on the trial and tell Optuna; False when another process had
        already failed the trial as stale (Optuna refuses to change a finished trial)."""
        import optuna

        study, trial = self.study, member.trial
        stored = result.to_json()
        try:
            adapter.set_trial_system_attr(study, trial, RESULT_ATTR, stored)
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
        """Nothing: each tell is in the study already."""

    def abandon(self, members: list[Member]) -> str:
        """Fail the batch's trials in Optuna (the next run retries them in their blocks). A
        storage that is away as well must not hide the first error: its trials are then
        failed as stale by the next run."""
        import optuna

        with contextlib.suppress(Exception):
            for member in members:
                self.study.tell(
                    member.trial, state=optuna.trial.TrialState.FAIL, skip_if_finished=True
                )
        return (
            f"bnsearch: {len(members)} trials in flight were marked failed; the next run "
            "retries them."
        )
