"""The Optuna backend: an Optuna sampler and pruner decide what to try next.

It claims paired blocks of trials (:mod:`._claims`), lets the engine train a batch of them,
tells Optuna each outcome and logs each trial to MLflow. The jobs around that loop live in
their own modules: the study and its fingerprints (:mod:`._storage`), creating blocks
(:mod:`._blocks`), heartbeats and dead processes' trials (:mod:`._heartbeat`), pruning a
population (:mod:`._pruning`), the failure policy (:mod:`._failures`), and Optuna's
private attributes (:mod:`._optuna_adapter`).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import bnsearch.backends.optuna._adapter as adapter
from bnsearch._interrupts import raise_if_stopped
from bnsearch._redact import redact_url
from bnsearch.backends._base import ResultCallback
from bnsearch.backends._budget import (
    batch_room,
    paired_budget,
    settled_verdict,
    up_to_date_message,
)
from bnsearch.backends._failures import stop_after_failures
from bnsearch.backends._kept_models import keeps_models, log_kept_models
from bnsearch.backends.optuna._ask import Member, ask_confirmation
from bnsearch.backends.optuna._claims import claim_batch
from bnsearch.backends.optuna._heartbeat import Heartbeat, close_stale_trials, closed_message
from bnsearch.backends.optuna._pruning import EpochSnapshot
from bnsearch.backends.optuna._storage import (
    RESULT_ATTR,
    RUN_ID_ATTR,
    open_study,
    results_from_study,
    search_trial_count,
    stored_trials,
    study_importances,
)
from bnsearch.config import StudyConfig
from bnsearch.data import Dataset
from bnsearch.engines import Engine
from bnsearch.stats import Verdict, best_per_placement
from bnsearch.tracking import MlflowTracker
from bnsearch.trial import StoredTrials, TrialResult, TrialState

__all__ = ["TAKEN_OVER", "OptunaBackend"]


TAKEN_OVER = (
    "taken over: another process failed this trial as stale while it trained; its result is "
    "dropped and the trial is retried in its block"
)


def _tell(study: Any, trial: Any, result: TrialResult) -> bool:
    """Store the result on the trial and tell Optuna; False when another process had
    already failed the trial as stale (Optuna refuses to change a finished trial)."""
    import optuna

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


@dataclass
class OptunaBackend:
    """Paired blocks in an Optuna study (a SQLite file, or PostgreSQL shared by workers).

    The budget is ``config.trials_per_run`` trials of this run or, with
    ``config.target_trials``,
    that many search trials in the study (shared with any other worker; rounded up to whole
    blocks). A batch holds as many whole blocks as fit in the engine's population (at least
    one). Until settled, the budget is a cap: the first batch holds the fewest blocks that
    can settle, and before each batch the study's pooled blocks (every worker's) are asked
    whether they have settled the verdict; if so, no more blocks are claimed. Before each
    batch, trials of dead processes are failed and trials that failed
    without a result are retried first. With a target, a worker that has nothing left to
    claim waits for the other workers' running trials, taking over any whose worker dies,
    so the study is complete when it returns. Ctrl-C fails the trials in flight in Optuna,
    ends their MLflow runs as KILLED and re-raises; the next run retries them.
    """

    config: StudyConfig
    dataset: Dataset
    engine: Engine
    tracker: MlflowTracker
    study: Any = field(default=None, init=False)
    _existing: int = field(default=0, init=False)

    name: ClassVar[str] = "Optuna"
    unpaired_reason: ClassVar[str | None] = None

    # --- the study -----------------------------------------------------------------------

    def open(self) -> list[str]:
        self.study = open_study(self.config, self.dataset)
        stale = close_stale_trials(self.study, self.tracker)
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
        """Whole paired blocks (up to ``target_trials`` when set), then the confirmation."""
        have = 0 if self.config.target_trials is None else search_trial_count(self.study)
        return paired_budget(self.config, have)

    def results(self) -> list[TrialResult]:
        return results_from_study(self.study)

    def stored_trials(self) -> StoredTrials:
        return stored_trials(self.study)

    def importances(self) -> dict[str, float]:
        return study_importances(self.study)

    def record_verdict(self, verdict: Verdict) -> None:
        self.study.set_user_attr("bnsearch.verdict", verdict.statement)
        self.study.set_user_attr("bnsearch.verdict_outcome", verdict.outcome)

    # --- training ------------------------------------------------------------------------

    def run(
        self, on_result: ResultCallback | None, log: Callable[[str], None]
    ) -> list[TrialResult]:
        results = self._search(on_result, log)
        if results and self.config.confirm_seeds:
            log(
                f"confirming: each placement's best configuration with "
                f"{self.config.confirm_seeds} fresh seeds"
            )
            results += self._confirm(on_result, log)
        return results

    def _search(
        self, on_result: ResultCallback | None, log: Callable[[str], None]
    ) -> list[TrialResult]:
        config, study = self.config, self.study
        started = time.monotonic()
        results: list[TrialResult] = []
        capacity = max(self.engine.trials_at_once, len(config.space.placement))
        while config.timeout is None or time.monotonic() - started < config.timeout:
            raise_if_stopped()
            closed = close_stale_trials(study, self.tracker)
            if closed:
                log(closed_message(closed))
            if statement := settled_verdict(config, results_from_study(study)):
                log(f"bnsearch: settled; no more blocks: {statement}")
                break
            wanted = (
                None if config.target_trials is not None else config.trials_per_run - len(results)
            )
            room = batch_room(config, capacity, search_trial_count(study))
            asked = claim_batch(study, config, room, wanted)
            if not asked:
                if config.target_trials is None or not self._others_running():
                    break
                time.sleep(max(1, config.heartbeat_interval or 1))
                continue
            batch = self._train_and_tell(asked, on_result, log)
            results.extend(batch)
            stop_after_failures(results, batch)
        return results

    def _others_running(self) -> bool:
        """Whether search trials of the study are still running (other workers')."""
        import optuna

        running = self.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
        return any(t.user_attrs.get("bnsearch.phase", "search") == "search" for t in running)

    def _confirm(
        self, on_result: ResultCallback | None, log: Callable[[str], None]
    ) -> list[TrialResult]:
        """Re-train each placement's best configuration with fresh seeds (paired by seed)."""
        best = best_per_placement(results_from_study(self.study))
        if not best:
            return []
        asked = ask_confirmation(self.study, self.config, best)
        return self._train_and_tell(asked, on_result, log)

    def _train_and_tell(
        self, asked: list[Member], on_result: ResultCallback | None, log: Callable[[str], None]
    ) -> list[TrialResult]:
        """Log, train, tell and log again; the trials beat from their claim to their end
        (MLflow logging included), so a slow tracking store never makes them look dead."""
        in_flight: list[tuple[Any, Any, str | None]] = []
        finished: set[str | None] = set()
        with Heartbeat(self.study, [t for t, _ in asked]):
            try:
                return self._train_and_tell_beating(asked, in_flight, finished, on_result, log)
            except BaseException as error:
                import optuna

                # Nothing in flight stays RUNNING: Optuna fails the trials, MLflow ends the
                # runs that did not finish. A storage that is away as well must not hide
                # the first error: its trials are then failed as stale by the next run.
                with contextlib.suppress(Exception):
                    for trial, _ in asked:
                        self.study.tell(
                            trial, state=optuna.trial.TrialState.FAIL, skip_if_finished=True
                        )
                for _, _, run_id in in_flight:
                    if run_id not in finished:
                        self.tracker.kill_run(run_id, "interrupted")
                if isinstance(error, KeyboardInterrupt):
                    log(
                        f"bnsearch: {len(asked)} trials in flight were marked failed; the "
                        "next run retries them."
                    )
                raise

    def _train_and_tell_beating(
        self,
        asked: list[Member],
        in_flight: list[tuple[Any, Any, str | None]],
        finished: set[str | None],
        on_result: ResultCallback | None,
        log: Callable[[str], None],
    ) -> list[TrialResult]:
        study, tracker = self.study, self.tracker
        for trial, spec in asked:
            run_id = tracker.start_trial(spec, _run_tags(study, trial, spec))
            if run_id is not None:
                trial.set_user_attr(RUN_ID_ATTR, run_id)
            trial.set_user_attr("bnsearch.parent_run", tracker.parent_run_id or "")
            in_flight.append((trial, spec, run_id))
        snapshot = EpochSnapshot(study)

        def on_epoch(index: int, epoch: int, metrics: dict[str, float]) -> bool:
            raise_if_stopped()
            if in_flight[index][1].phase == "confirm":
                return False
            return snapshot.should_prune(in_flight[index][0], epoch, metrics["val_loss"])

        specs = [s for _, s, _ in in_flight]
        keep = keeps_models(self.config, specs)
        self.engine.keep_models = keep
        outcomes = self.engine.train(specs, self.dataset, self.config.network, on_epoch)
        results = []
        for (trial, spec, run_id), result in zip(in_flight, outcomes, strict=True):
            # Optuna first: the result is kept whatever happens to MLflow next.
            if not _tell(study, trial, result):
                tracker.kill_run(run_id, TAKEN_OVER, status="FAILED")
                finished.add(run_id)
                log(f"bnsearch: trial {trial.number} was {TAKEN_OVER}.")
                continue
            tracker.finish_trial(run_id, result, extra_tags=_run_tags(study, trial, spec))
            finished.add(run_id)
            results.append(result)
            if on_result is not None:
                on_result(result)
        if keep:
            log_kept_models(tracker, self.engine.models, [r for _, _, r in in_flight], self.dataset)
        return results


def _run_tags(study: Any, trial: Any, spec: Any) -> dict[str, str]:
    tags = {"optuna.study": study.study_name, "bnsearch.phase": spec.phase}
    retried = trial.user_attrs.get("bnsearch.retries_trial")
    if retried is not None:
        tags["bnsearch.retries_trial"] = str(retried)
    return tags
