"""Paired blocks under Keras Tuner (``--tuner random`` and ``bayesian``): its oracle decides
what to try, bnsearch's engine trains (docs/guides/backends.md); a full disk under the
project is one :class:`~bnsearch.errors.StoreFullError` naming it."""

from __future__ import annotations

import json
import math
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bnsearch.backends.keras_tuner._adapter as adapter
from bnsearch.backends._loop import Member, Pruner
from bnsearch.backends.keras_tuner._files import (
    append_result,
    results_from_project,
    write_atomically,
)
from bnsearch.backends.keras_tuner._your_tuner import paired_oracle_class, trial_config
from bnsearch.config import StudyConfig
from bnsearch.errors import naming_full_disk
from bnsearch.trial import (
    METRICS,
    Phase,
    TrialResult,
    TrialSpec,
    TrialState,
    confirmation_seed,
    keys,
    trial_seed,
)

#: Confirmation trials are numbered from here, clear of the oracle's trial ids.
CONFIRM_BASE = 1_000_000
_BLOCKS_FILE = "bnsearch_blocks.json"


def _scored_paired_oracle(base: type) -> type:
    """:func:`paired_oracle_class` of ``base``, scoring a trial by its last epoch (as Optuna)."""

    class ScoredPairedOracle(paired_oracle_class(base)):  # type: ignore[misc]
        def score_trial(self, trial: Any) -> None:
            history = trial.metrics.get_history(self.objective.name)
            trial.score = history[-1].value[-1] if history else float("nan")
            trial.best_step = history[-1].step if history else 0

    return ScoredPairedOracle


def open_oracle(config: StudyConfig, folder: Path) -> Any:
    """The study's paired oracle, reloaded from the project in ``folder`` if it has one."""
    import keras_tuner as kt

    adapter.make_keras_tuner_saves_atomic()

    hyperparameters = kt.HyperParameters()
    config.space.from_keras_tuner(hyperparameters)
    bases = {
        "random": kt.oracles.RandomSearchOracle,
        "bayesian": adapter.screened_bayesian_class(kt.oracles.BayesianOptimizationOracle),
    }
    oracle = _scored_paired_oracle(bases[config.tuner])(
        objective=kt.Objective("val_loss", "min"),
        max_trials=None,
        hyperparameters=hyperparameters,
        seed=config.seed + 1,  # Keras Tuner takes a seed of 0 for "none"
        # bnsearch's own failure policy (stop_after_failures) decides when to stop.
        max_consecutive_failed_trials=2**31,
    )
    oracle.verbose = 0
    adapter.set_project_dir(oracle, folder)
    if (folder / "oracle.json").exists():
        oracle.reload()
    return oracle


def search_count(results: list[TrialResult]) -> int:
    """Search trials with an outcome, towards ``target_trials``."""
    return sum(1 for r in results if r.spec.phase == Phase.SEARCH)


@dataclass
class KerasTunerSearcher:
    """The paired search's side that is Keras Tuner's: the oracle of the project in
    ``folder`` (one process at a time: the study lock); a confirmation member has no trial."""

    config: StudyConfig
    oracle: Any
    folder: Path

    def _writing(self) -> AbstractContextManager[None]:
        return naming_full_disk(f"the Keras Tuner project {self.folder}", self.folder)

    def stored_results(self) -> list[TrialResult]:
        return results_from_project(self.folder)

    def search_trials(self) -> int:
        return search_count(self.stored_results())

    def reclaim(self) -> None:
        """Nothing: the oracle reloaded from the project retries a killed run's trials."""

    def ask_batch(self, room: int, wanted: int | None) -> list[Member]:
        block_size = len(self.config.space.placement)
        if self.config.target_trials is not None:
            wanted = self.config.target_trials - self.search_trials()
        with self._writing():
            return self._claim(min(room, math.ceil(max(wanted or 0, 0) / block_size) * block_size))

    def _claim(self, room: int) -> list[Member]:
        """Up to ``room`` trials: the oracle's retries first, then whole new blocks."""
        oracle = self.oracle
        path = self.folder / _BLOCKS_FILE
        blocks: dict[str, list[int]] = json.loads(path.read_text()) if path.exists() else {}
        placements = self.config.space.placement
        asked: list[Member] = []
        while len(asked) < room and (not asked or len(asked) + len(placements) <= room):
            first = oracle.create_trial(f"bnsearch-{len(asked)}")
            if first.status != "RUNNING":
                break  # the oracle has nothing more to try
            if first.trial_id in blocks:  # a trial a killed run left in flight
                asked.append(Member(first, _spec(first, *blocks[first.trial_id])))
                continue
            block = int(first.trial_id)
            seed = trial_seed(self.config.seed, block)
            # its siblings, queued by the oracle when it proposed it
            members = [first] + [
                oracle.create_trial(f"bnsearch-{len(asked) + 1 + i}")
                for i in range(len(placements) - 1)
            ]
            for trial in members:
                blocks[trial.trial_id] = [block, seed]
                asked.append(Member(trial, _spec(trial, block, seed)))
            write_atomically(self.folder / _BLOCKS_FILE, json.dumps(blocks))
        return asked

    def others_running(self) -> bool:
        """No other process runs the project (the study lock)."""
        return False

    def ask_confirmation(self, best: list[TrialResult]) -> list[Member]:
        """Each placement's best configuration, once per fresh seed, as one round."""
        round_id = CONFIRM_BASE + len(self.stored_results())
        asked: list[Member] = []
        for k in range(self.config.confirm_seeds):
            seed = confirmation_seed(self.config.seed, round_id, k)
            for result in best:
                number = round_id + len(asked)
                spec = TrialSpec(number, result.config, seed, round_id, Phase.CONFIRM)
                asked.append(Member(None, spec))
        return asked

    def in_flight(self, members: list[Member]) -> nullcontext[None]:
        return nullcontext()

    def run_tags(self, member: Member) -> dict[str, str]:
        tags = {keys.PHASE: member.spec.phase, keys.BACKEND: "keras-tuner"}
        if member.trial is not None:
            tags["keras_tuner.trial_id"] = str(member.trial.trial_id)
        return tags

    def started(self, member: Member, run_id: str | None) -> None:
        """Nothing: the trial's MLflow run carries its trial id."""

    def pruner(self) -> Pruner:
        """Keras Tuner's oracles do not prune: every trial trains every epoch."""
        return lambda member, epoch, value: False

    def tell(self, member: Member, result: TrialResult) -> bool:
        """Tell the oracle the trial's per-epoch values and its end, then append the result."""
        with self._writing():
            self._tell(member.trial, result)
        return True

    def _tell(self, trial: Any, result: TrialResult) -> None:
        if trial is not None:
            if result.state is TrialState.COMPLETE:
                for step in range(result.epochs_trained):
                    values = {m: result.history[m][step] for m in METRICS if m in result.history}
                    self.oracle.update_trial(trial.trial_id, values, step=step)
                trial.status = "COMPLETED"
            else:
                trial.status = "FAILED"
                trial.message = result.fail_reason or result.state.value
            self.oracle.end_trial(trial)
        append_result(self.folder, result)

    def batch_told(self, members: list[Member]) -> None:
        if any(member.trial is not None for member in members):
            with self._writing():
                self.oracle.save()  # end_trial saves before it lets go of the trial: once more

    def abandon(self, members: list[Member]) -> str:
        """Nothing to do: the next run's oracle retries the unfinished trials in their blocks."""
        n = len(members)
        what = "the trial in flight stays" if n == 1 else f"the {n} trials in flight stay"
        return f"{what} in the Keras Tuner project and the next run retries them"


def _spec(trial: Any, block: int, seed: int) -> TrialSpec:
    return TrialSpec(int(trial.trial_id), trial_config(trial), seed, block, Phase.SEARCH)
