"""Paired blocks under Keras Tuner: its oracle decides what to try, bnsearch's engine trains.

For ``--tuner random`` and ``--tuner bayesian`` bnsearch drives the Keras Tuner *oracle*
itself (the "what to try next" half of Keras Tuner's oracle/tuner split) instead of
``tuner.search``:

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
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bnsearch._interrupts import raise_if_stopped
from bnsearch.backends._base import ResultCallback
from bnsearch.backends._budget import batch_room, settled_verdict
from bnsearch.backends._failures import stop_after_failures
from bnsearch.backends._kept_models import keeps_models, log_kept_models
from bnsearch.backends.keras_tuner._files import make_keras_tuner_saves_atomic, write_atomically
from bnsearch.config import PAIRED_TUNERS, StudyConfig
from bnsearch.data import Dataset
from bnsearch.engines import Engine
from bnsearch.stats import best_per_placement
from bnsearch.tracking import MlflowTracker
from bnsearch.trial import (
    METRICS,
    BNConfig,
    TrialResult,
    TrialSpec,
    TrialState,
    confirmation_seed,
    trial_seed,
)

__all__ = [
    "CONFIRM_BASE",
    "PAIRED_TUNERS",
    "PairedSearch",
    "paired_oracle_class",
    "search_count",
]

#: Confirmation trials are numbered from here, clear of the oracle's trial ids.
CONFIRM_BASE = 1_000_000
_BLOCKS_FILE = "bnsearch_blocks.json"

Member = tuple[Any, TrialSpec]
"""An oracle trial (None for a confirmation trial) and the TrialSpec to train for it."""


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


#: The Bayesian oracle's acquisition is maximised from the best of this many random points.
ACQUISITION_CANDIDATES = 2000
#: ... by this many L-BFGS runs (Keras Tuner starts 50 from random points).
ACQUISITION_STARTS = 5


def _screened_bayesian_class(base: type) -> type:
    """Keras Tuner's ``BayesianOptimizationOracle`` with its acquisition maximised from
    screened starts: the upper confidence bound is evaluated on
    :data:`ACQUISITION_CANDIDATES` random points in one vectorised prediction and L-BFGS runs
    from the :data:`ACQUISITION_STARTS` best, instead of from 50 random points. Measured on
    the default study: 50 random starts spent 4 s per proposal (175 s of a 255 s study), in
    numerical gradients of one-point GP predictions. The GP, its fit, the hallucinated
    results of trials in flight and the bound are Keras Tuner's."""
    import numpy as np
    import scipy.optimize

    class ScreenedBayesianOracle(base):  # type: ignore[misc, valid-type]
        def populate_space(self, trial_id: str) -> dict[str, Any]:
            completed = [t for t in self.trials.values() if t.status == "COMPLETED"]
            dimensions = len(self.hyperparameters.space)
            if len(completed) < (self.num_initial_points or max(3 * dimensions, 3)):
                return self._random_populate_space()
            x, y = self._vectorize_trials()
            x, y = np.nan_to_num(x, posinf=0, neginf=0), np.nan_to_num(y, posinf=0, neginf=0)
            self.gpr.fit(x, y)
            bounds = self._get_hp_bounds()

            def bound(points: Any) -> Any:
                mu, sigma = self.gpr.predict(np.atleast_2d(points), return_std=True)
                return np.asarray(mu).ravel() - self.beta * np.asarray(sigma).ravel()

            candidates = self._random_state.uniform(
                bounds[:, 0], bounds[:, 1], size=(ACQUISITION_CANDIDATES, bounds.shape[0])
            )
            starts = candidates[np.argsort(bound(candidates))[:ACQUISITION_STARTS]]
            runs = [
                scipy.optimize.minimize(
                    lambda v: bound(v)[0], x0=start, bounds=bounds, method="L-BFGS-B"
                )
                for start in starts
            ]
            best = min(runs, key=lambda run: float(np.ravel(run.fun)[0]))
            return {"status": "RUNNING", "values": self._vector_to_values(best.x)}

    ScreenedBayesianOracle.__name__ = f"Screened{base.__name__}"
    return ScreenedBayesianOracle


def _open_oracle(config: StudyConfig, folder: Path) -> Any:
    import keras_tuner as kt

    make_keras_tuner_saves_atomic()

    hyperparameters = kt.HyperParameters()
    config.space.from_keras_tuner(hyperparameters)
    bases = {
        "random": kt.oracles.RandomSearchOracle,
        "bayesian": _screened_bayesian_class(kt.oracles.BayesianOptimizationOracle),
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
    oracle._set_project_dir(str(folder.parent), folder.name)
    if (folder / "oracle.json").exists():
        oracle.reload()
    return oracle


def search_count(results: list[TrialResult]) -> int:
    """Search trials with an outcome, towards ``target_trials``."""
    return sum(1 for r in results if r.spec.phase == "search")


class PairedSearch:
    """One invocation's paired search and confirmation round over a Keras Tuner project.

    ``append`` writes a result to the project (before MLflow hears of it) and ``stored``
    reads the project's results back; both belong to the backend that owns the project.
    """

    def __init__(
        self,
        config: StudyConfig,
        dataset: Dataset,
        engine: Engine,
        tracker: MlflowTracker,
        folder: Path,
        append: Callable[[TrialResult], None],
        stored: Callable[[], list[TrialResult]],
    ) -> None:
        self.config = config
        self.dataset = dataset
        self.engine = engine
        self.tracker = tracker
        self.folder = folder
        self.append = append
        self.stored = stored

    def run(
        self, on_result: ResultCallback | None, log: Callable[[str], None]
    ) -> list[TrialResult]:
        oracle = _open_oracle(self.config, self.folder)
        results = self._search(oracle, on_result, log)
        if results and self.config.confirm_seeds:
            log(
                f"confirming: each placement's best configuration with "
                f"{self.config.confirm_seeds} fresh seeds"
            )
            results += self._train_and_record(None, self._confirmation(), on_result)
        return results

    def _search(
        self, oracle: Any, on_result: ResultCallback | None, log: Callable[[str], None]
    ) -> list[TrialResult]:
        config = self.config
        block_size = len(config.space.placement)
        capacity = max(self.engine.trials_at_once, block_size)
        started = time.monotonic()
        results: list[TrialResult] = []
        while config.timeout is None or time.monotonic() - started < config.timeout:
            raise_if_stopped()
            stored = self.stored()
            if statement := settled_verdict(config, stored):
                log(f"bnsearch: settled; no more blocks: {statement}")
                break
            if config.target_trials is not None:
                wanted = config.target_trials - search_count(stored)
            else:
                wanted = config.trials_per_run - len(results)
            room = batch_room(config, capacity, search_count(stored))
            asked = self._claim(
                oracle, min(room, math.ceil(max(wanted, 0) / block_size) * block_size)
            )
            if not asked:
                break
            batch = self._train_and_record(oracle, asked, on_result)
            results.extend(batch)
            stop_after_failures(results, batch)
        return results

    def _claim(self, oracle: Any, room: int) -> list[Member]:
        """Up to ``room`` trials: the oracle's retries first (in their blocks), then whole
        new blocks (at least one when there is room at all)."""
        blocks: dict[str, list[int]] = _read_blocks(self.folder)
        placements = self.config.space.placement
        asked: list[Member] = []
        while len(asked) < room and (not asked or len(asked) + len(placements) <= room):
            first = oracle.create_trial(f"bnsearch-{len(asked)}")
            if first.status != "RUNNING":
                break  # the oracle has nothing more to try
            if first.trial_id in blocks:  # a trial a killed run left in flight
                asked.append((first, self._spec(first, *blocks[first.trial_id])))
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
                asked.append((trial, self._spec(trial, block, seed)))
            _write_blocks(self.folder, blocks)
        return asked

    def _spec(self, trial: Any, block: int, seed: int) -> TrialSpec:
        values = trial.hyperparameters.values
        config = BNConfig(**{k: values[k] for k in BNConfig.field_names() if k in values})
        return TrialSpec(int(trial.trial_id), config, seed, block, "search")

    def _confirmation(self) -> list[Member]:
        """Each placement's best configuration, once per fresh seed, as one round."""
        best = best_per_placement(self.stored())
        round_id = CONFIRM_BASE + len(self.stored())
        asked = []
        for k in range(self.config.confirm_seeds):
            seed = confirmation_seed(self.config.seed, round_id, k)
            for result in best:
                number = round_id + len(asked)
                asked.append((None, TrialSpec(number, result.config, seed, round_id, "confirm")))
        return asked

    def _train_and_record(
        self, oracle: Any, asked: list[Member], on_result: ResultCallback | None
    ) -> list[TrialResult]:
        """Train the batch; for each trial, tell the oracle, store the result in the
        project, then log it to MLflow. On Ctrl-C (wherever it lands) the oracle keeps the
        unfinished trials as ongoing (the next run's oracle retries them) and their runs end
        KILLED."""
        run_ids: list[str | None] = []
        finished: set[int] = set()
        try:
            return self._train_and_record_runs(oracle, asked, on_result, run_ids, finished)
        except BaseException:
            for index, run_id in enumerate(run_ids):
                if index not in finished:
                    self.tracker.kill_run(run_id, "interrupted")
            raise

    def _train_and_record_runs(
        self,
        oracle: Any,
        asked: list[Member],
        on_result: ResultCallback | None,
        run_ids: list[str | None],
        finished: set[int],
    ) -> list[TrialResult]:
        tracker = self.tracker
        for trial, spec in asked:
            tags = {"bnsearch.phase": spec.phase, "bnsearch.backend": "keras-tuner"}
            if trial is not None:
                tags["keras_tuner.trial_id"] = str(trial.trial_id)
            run_ids.append(tracker.start_trial(spec, tags))

        def on_epoch(index: int, epoch: int, metrics: dict[str, float]) -> bool:
            raise_if_stopped()
            return False

        specs = [spec for _, spec in asked]
        keep = keeps_models(self.config, specs)
        self.engine.keep_models = keep
        outcomes = self.engine.train(specs, self.dataset, self.config.network, on_epoch)
        for index, ((trial, _), result) in enumerate(zip(asked, outcomes, strict=True)):
            if trial is not None:
                _tell(oracle, trial, result)
            self.append(result)
            tracker.finish_trial(run_ids[index], result)
            finished.add(index)
            if on_result is not None:
                on_result(result)
        if oracle is not None:
            oracle.save()  # end_trial saves before it lets go of the trial: once more, after
        if keep:
            log_kept_models(tracker, self.engine.models, run_ids, self.dataset)
        return outcomes


def _tell(oracle: Any, trial: Any, result: TrialResult) -> None:
    """The trial's per-epoch values (one step per epoch), then its end."""
    if result.state is TrialState.COMPLETE:
        for step in range(result.epochs_trained):
            values = {m: result.history[m][step] for m in METRICS if m in result.history}
            oracle.update_trial(trial.trial_id, values, step=step)
        trial.status = "COMPLETED"
    else:
        trial.status = "FAILED"
        trial.message = result.fail_reason or result.state.value
    oracle.end_trial(trial)


def _read_blocks(folder: Path) -> dict[str, list[int]]:
    path = folder / _BLOCKS_FILE
    return json.loads(path.read_text()) if path.exists() else {}


def _write_blocks(folder: Path, blocks: dict[str, list[int]]) -> None:
    write_atomically(folder / _BLOCKS_FILE, json.dumps(blocks))
