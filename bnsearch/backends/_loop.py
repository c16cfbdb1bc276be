"""The paired search, written once: both backends run it and supply its hooks (reclaim, ask a
batch of whole blocks, train it, tell each result to the store, MLflow, then ``on_result``)."""

from __future__ import annotations

import abc
import itertools
import textwrap
import time
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from bnsearch._interrupts import deferred, raise_if_stopped
from bnsearch.backends._base import BatchCallback, ResultCallback
from bnsearch.backends._budget import batch_room, paired_budget, settled_verdict
from bnsearch.backends._divergence import divergence_advice
from bnsearch.config import StudyConfig
from bnsearch.data import Dataset
from bnsearch.engines import Engine
from bnsearch.errors import StudyFailedError
from bnsearch.stats import best_per_placement
from bnsearch.tracking import MlflowTracker
from bnsearch.trial import (
    Phase,
    TrialResult,
    TrialSpec,
    TrialState,
    confirmation_seed,
    failure_kind,
)

MAX_CONSECUTIVE_FAILED_BATCHES = 3

TAKEN_OVER = (
    "taken over: another process failed this trial as stale while it trained; its result is "
    "dropped and the trial is retried in its block"
)


def confirmation_specs(
    config: StudyConfig, round_id: int, best: list[TrialResult]
) -> list[TrialSpec]:
    """The confirmation round ``round_id``: each configuration of ``best`` once per fresh seed."""
    seeds = [confirmation_seed(config.seed, round_id, k) for k in range(config.confirm_seeds)]
    return [
        TrialSpec(round_id + i, result.config, seed, round_id, Phase.CONFIRM)
        for i, (seed, result) in enumerate(itertools.product(seeds, best))
    ]


class Member(NamedTuple):
    """A trial of a batch: the backend's handle on it (None outside its search) and its spec."""

    trial: Any
    spec: TrialSpec


Pruner = Callable[[Member, int, float], bool]
"""``(member, epoch, that epoch's val_loss) -> prune this search trial?``"""


def timeout_reached(timeout: float | None) -> str:
    """What a search ended by ``--timeout`` says (either backend)."""
    return f"bnsearch: the timeout ({timeout:g} s) is reached: no new trials."


@dataclass
class PairedSearcher(abc.ABC):
    """The paired search and its confirmation round (:meth:`run`); each backend is one and
    supplies the hooks that ask and tell (those it has no use for do nothing)."""

    config: StudyConfig
    dataset: Dataset
    engine: Engine
    tracker: MlflowTracker
    _existing: int = field(default=0, init=False)  # the study's trials when opened
    # What run() was given, for the steps it takes.
    _on_result: ResultCallback | None = field(init=False, repr=False, compare=False)
    _log: Callable[[str], None] = field(init=False, repr=False, compare=False)

    def existing_trials(self) -> int:
        return self._existing

    def up_to_date(self) -> str | None:
        """What a run says when the study already holds its target or has settled."""
        config, have = self.config, self.search_trials()
        name = config.resolved_study_name
        if config.until == "settled" and settled_verdict(config, self.results()):
            return (
                f"bnsearch: study {name!r} is settled ({have} search trials); nothing to do "
                "(--until budget adds trials anyway)."
            )
        if config.target_trials is None or have < config.target_trials:
            return None
        return (
            f"bnsearch: study {name!r} is up to date ({have} of {config.target_trials} search "
            "trials); nothing to do."
        )

    def budget(self) -> tuple[int, str]:
        have = 0 if self.config.target_trials is None else self.search_trials()
        return paired_budget(self.config, have)

    def run(
        self, on_result: ResultCallback | None, log: Callable[[str], None]
    ) -> list[TrialResult]:
        self._on_result, self._log = on_result, log
        results = self._search()
        if results and (seeds := self.config.confirm_seeds):
            log(f"confirming: each placement's best configuration with {seeds} fresh seeds")
            if best := best_per_placement(self.results()):
                results += self._train(self.ask_confirmation(best), 1)
        return results

    @abc.abstractmethod
    def results(self) -> list[TrialResult]:
        """Every result the study's store holds, every worker's (read afresh)."""

    @abc.abstractmethod
    def search_trials(self) -> int:
        """The study's search trials that count towards ``target_trials``."""

    def reclaim(self) -> str | None:
        """Before each batch: fail what dead processes left in flight; a notice, or None."""
        return None

    @abc.abstractmethod
    def ask_batch(self, room: int, wanted: int | None) -> list[Member]:
        """Up to ``room`` trials in whole blocks, retries first (at least one block);
        ``wanted``: this run's remaining budget (None: ``target_trials`` decides)."""

    def others_running(self) -> bool:
        """Whether other workers' search trials are still running (worth waiting for)."""
        return False

    @abc.abstractmethod
    def ask_confirmation(self, best: list[TrialResult]) -> list[Member]:
        """The confirmation round: each configuration of ``best`` once per fresh seed."""

    def in_flight(self, members: list[Member]) -> AbstractContextManager[None]:
        """Held while ``members`` train and are told (Optuna beats for them)."""
        return nullcontext()

    @abc.abstractmethod
    def run_tags(self, member: Member) -> dict[str, str]:
        """The tags of the member's MLflow run."""

    def started(self, member: Member, run_id: str | None) -> None:
        """The member's MLflow run exists (None while MLflow is away)."""
        return None

    def pruner(self) -> Pruner:
        """Whether to prune a search trial after an epoch, for one batch."""
        return lambda member, epoch, value: False

    @abc.abstractmethod
    def tell(self, member: Member, result: TrialResult) -> bool:
        """Store the result and tell the backend; False when the trial was taken over."""

    def batch_told(self, members: list[Member]) -> None:
        """Every result of the batch is told."""
        return None

    @abc.abstractmethod
    def abandon(self, members: list[Member]) -> str | None:
        """A batch cut short: leave ``members`` for the next run to retry; what the Ctrl-C
        line adds, or None."""

    def _search(self) -> list[TrialResult]:
        config = self.config
        started = time.monotonic()
        results: list[TrialResult] = []
        look = 0
        advised = False  # the divergence advice is said once a run
        capacity = max(self.engine.trials_at_once, len(config.space.placement))
        while config.timeout is None or time.monotonic() - started < config.timeout:
            raise_if_stopped()
            if notice := self.reclaim():
                self._log(notice)
            if statement := settled_verdict(config, self.results()):
                self._log(textwrap.fill(f"bnsearch: {statement}", 100, subsequent_indent="  "))
                break
            wanted = (
                None if config.target_trials is not None else config.trials_per_run - len(results)
            )
            room = batch_room(config, capacity, self.search_trials())
            with deferred():  # a store write: not cut by Ctrl-C (raised once in flight)
                members = self.ask_batch(room, wanted)
            if not members:
                if config.target_trials is None or not self.others_running():
                    break
                time.sleep(max(1, config.heartbeat_interval or 1))
                continue
            look += 1
            batch = self._train(members, look)
            results.extend(batch)
            if not advised and (advice := divergence_advice(config, batch)):
                self._log(advice)
                advised = True
            stop_after_failures(results, batch)
        else:  # the timeout ended the search, not its budget
            self._log(timeout_reached(config.timeout))
        return results

    def _train(self, members: list[Member], look: int) -> list[TrialResult]:
        """Start the runs, train, tell and end the runs; a full disk under MLflow met on the
        way stops the study here."""
        run_ids: list[str | None] = []
        finished: set[int] = set()
        with self.in_flight(members):
            try:
                results = self._train_and_tell(members, look, run_ids, finished)
            except BaseException as error:
                # The store first (retried by the next run), then MLflow's unfinished runs.
                unfinished = [m for i, m in enumerate(members) if i not in finished]
                said = self.abandon(unfinished) if unfinished else None
                for index, run_id in enumerate(run_ids):
                    if index not in finished:
                        self.tracker.kill_run(run_id, "interrupted")
                if isinstance(error, KeyboardInterrupt) and said:
                    # The one line the command prints on its way out (stderr).
                    raise KeyboardInterrupt(f"bnsearch: interrupted; {said}.") from None
                raise
        if (full := self.tracker.full) is not None:
            raise full
        return results

    def _train_and_tell(
        self, members: list[Member], look: int, run_ids: list[str | None], finished: set[int]
    ) -> list[TrialResult]:
        config, tracker = self.config, self.tracker
        # Every member's MLflow run, then a deferred stop (a trial stopped without a run
        # would be in the store and never in MLflow).
        with deferred():
            for member in members:
                run_id = tracker.start_trial(member.spec, self.run_tags(member))
                run_ids.append(run_id)
                self.started(member, run_id)
        raise_if_stopped()
        prune = self.pruner()
        trained_epoch = getattr(self._on_result, "on_epoch", None)

        def on_epoch(index: int, epoch: int, metrics: dict[str, float]) -> bool:
            raise_if_stopped()
            if trained_epoch is not None:
                trained_epoch()
            member = members[index]
            return member.spec.phase != Phase.CONFIRM and prune(member, epoch, metrics["val_loss"])

        specs = [member.spec for member in members]
        # --keep-models keeps the confirmation round's (hundreds of search trials' models
        # would fill the store for nothing).
        keep = config.keep_models and all(s.phase == Phase.CONFIRM for s in specs)
        on_batch: BatchCallback | None = getattr(self._on_result, "on_batch", None)
        if on_batch is not None:
            on_batch(members[0].spec.phase, look, len(members), config.network.epochs)
        trained = self.engine.train(specs, self.dataset, config.network, on_epoch, keep_models=keep)
        results = []
        for index, (member, result) in enumerate(zip(members, trained.results, strict=True)):
            raise_if_stopped()  # one deferred while the previous result was told
            # The backend's store first: the result is kept whatever happens to MLflow next.
            with deferred():
                told = self.tell(member, result)
            if not told:
                tracker.kill_run(run_ids[index], TAKEN_OVER, status="FAILED")
                finished.add(index)
                self._log(f"bnsearch: trial {member.spec.number} was {TAKEN_OVER}.")
                continue
            tracker.finish_trial(run_ids[index], result, extra_tags=self.run_tags(member))
            finished.add(index)
            results.append(result)
            if self._on_result is not None:
                self._on_result(result)
        self.batch_told(members)
        if keep:
            try:
                log_kept_models(tracker, trained.models, run_ids, self.dataset)
            except Exception as error:
                # A full disk under MLflow: recorded, and raised once the batch is done.
                if (full := tracker.full_disk_fault(error)) is None:
                    raise
                tracker.full = full
        return results


def stop_after_failures(results: list[TrialResult], batch: list[TrialResult]) -> None:
    """Raise StudyFailedError once the last :data:`MAX_CONSECUTIVE_FAILED_BATCHES` batches
    failed entirely, with the commonest reasons."""
    if batch and any(r.state is not TrialState.FAILED for r in batch):
        return
    failed_run = next(
        (i for i, r in enumerate(reversed(results)) if r.state is not TrialState.FAILED),
        len(results),
    )
    if failed_run / max(len(batch), 1) < MAX_CONSECUTIVE_FAILED_BATCHES:
        return
    reasons = Counter(failure_kind(r.fail_reason) for r in results[-failed_run:])
    summary = "; ".join(f"{n}× {reason}" for reason, n in reasons.most_common(3))
    raise StudyFailedError(
        f"stopped after {failed_run} consecutive failed trials ({summary}); check the data "
        "and the learning-rate range."
    )


def log_kept_models(
    tracker: MlflowTracker, models: Sequence[Any], run_ids: Sequence[str | None], dataset: Dataset
) -> None:
    """Log each kept model to its trial's run (a failed trial has no model)."""
    for model, run_id in zip(models, run_ids, strict=True):
        if model is not None and run_id is not None:
            tracker.log_keras_model(run_id, model, dataset.x)
