"""Paired blocks under Keras Tuner: its oracle decides what to try, bnsearch's engine trains.

For ``--tuner random`` and ``--tuner bayesian`` bnsearch drives the Keras Tuner *oracle*
itself (the "what to try next" half of Keras Tuner's oracle/tuner split) instead of
``tuner.search``: :class:`KerasTunerSearcher` is the oracle's side of bnsearch's
paired-search loop (:mod:`bnsearch.backends._loop`).

* Each trial the oracle proposes opens a paired block. The block's siblings — the same
  values with each other placement, and the same seed — are handed to the oracle through
  a queue that its ``populate_space`` serves first (:func:`paired_oracle_class`), so every
  trained trial is an oracle trial of its own and Bayesian optimisation learns from all
  of them.
* A batch holds as many whole blocks as the engine trains at once (the population engine:
  ``--population``), trained together. Each trial's per-epoch values go to the oracle
  (``update_trial``, one step per epoch); its score is the final epoch's validation loss,
  the study's objective, as with Optuna.
* A result is appended to the project's results file first, then logged to MLflow.
* Resume: the oracle reloads from the project; trials a killed run left in flight are
  retried by the oracle first, in their block (``bnsearch_blocks.json`` maps each trial to
  its block and seed).
* The confirmation round re-trains each placement's best configuration with fresh seeds
  outside the oracle (numbers from :data:`CONFIRM_BASE`), paired by seed as with Optuna.
* A full disk under the project (:func:`bnsearch.errors.full_disk`) is one
  :class:`~bnsearch.errors.StoreFullError` naming it, raised from the write that met it:
  the results appended so far stay, and the oracle retries the rest on the next run.
"""

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
from bnsearch.config import PAIRED_TUNERS, StudyConfig
from bnsearch.errors import naming_full_disk
from bnsearch.trial import (
    METRICS,
    BNConfig,
    Phase,
    TrialResult,
    TrialSpec,
    TrialState,
    confirmation_seed,
    keys,
    trial_seed,
)

__all__ = [
    "CONFIRM_BASE",
    "PAIRED_TUNERS",
    "KerasTunerSearcher",
    "open_oracle",
    "paired_oracle_class",
    "search_count",
]

#: Confirmation trials are numbered from here, clear of the oracle's trial ids.
CONFIRM_BASE = 1_000_000
_BLOCKS_FILE = "bnsearch_blocks.json"


def paired_oracle_class(base: type) -> type:
    """``base`` (a Keras Tuner oracle class) that serves queued sibling values before its
    own proposals and scores a trial by its last epoch's objective."""

    class PairedOracle(base):  # type: ignore[misc, valid-type]
        def populate_space(self, trial_id: str) -> dict[str, Any]:
            queue = self.__dict__.setdefault("bnsearch_siblings", [])
            if queue:
                return {"status": "RUNNING", "values": queue.pop(0)}
            return super().populate_space(trial_id)

        def score_trial(self, trial: Any) -> None:
            history = trial.metrics.get_history(self.objective.name)
            trial.score = history[-1].value[-1] if history else float("nan")
            trial.best_step = history[-1].step if history else 0

    PairedOracle.__name__ = f"Paired{base.__name__}"
    return PairedOracle


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
    oracle = paired_oracle_class(bases[config.tuner])(
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
    ``folder`` (one invocation runs a project at a time: the study lock). A member's trial
    is its oracle trial, None for a confirmation trial (outside the oracle)."""

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
        """Up to ``room`` trials: the oracle's retries first (in their blocks), then whole
        new blocks (at least one when there is room at all)."""
        oracle = self.oracle
        blocks: dict[str, list[int]] = _read_blocks(self.folder)
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
            values = first.hyperparameters.values
            oracle.bnsearch_siblings = [
                {**values, "placement": p} for p in placements if p != values["placement"]
            ]
            members = [first] + [
                oracle.create_trial(f"bnsearch-{len(asked) + 1 + i}")
                for i in range(len(placements) - 1)
            ]
            for trial in members:
                blocks[trial.trial_id] = [block, seed]
                asked.append(Member(trial, _spec(trial, block, seed)))
            _write_blocks(self.folder, blocks)
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
        """Tell the oracle the trial's per-epoch values (one step per epoch) and its end,
        then append the result to the project's results file."""
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
        """Nothing to do: the oracle keeps the unfinished trials as ongoing and the next
        run's oracle retries them, in their blocks (which the line says)."""
        n = len(members)
        what = "the trial in flight stays" if n == 1 else f"the {n} trials in flight stay"
        return f"{what} in the Keras Tuner project and the next run retries them"


def _spec(trial: Any, block: int, seed: int) -> TrialSpec:
    values = trial.hyperparameters.values
    config = BNConfig(**{k: values[k] for k in BNConfig.field_names() if k in values})
    return TrialSpec(int(trial.trial_id), config, seed, block, Phase.SEARCH)


def _read_blocks(folder: Path) -> dict[str, list[int]]:
    path = folder / _BLOCKS_FILE
    return json.loads(path.read_text()) if path.exists() else {}


def _write_blocks(folder: Path, blocks: dict[str, list[int]]) -> None:
    write_atomically(folder / _BLOCKS_FILE, json.dumps(blocks))
