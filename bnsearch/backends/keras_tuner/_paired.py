"""Paired blocks under Keras Tuner (``--tuner random`` and ``bayesian``): its oracle decides
what to try, bnsearch's engine trains (docs/guides/backends.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import bnsearch.backends.keras_tuner._adapter as adapter
from bnsearch.backends._loop import Member
from bnsearch.backends.keras_tuner._files import write_atomically
from bnsearch.backends.keras_tuner._your_tuner import paired_oracle_class, trial_config
from bnsearch.config import StudyConfig
from bnsearch.trial import Phase, TrialSpec, trial_seed

_BLOCKS_FILE = "bnsearch_blocks.json"


def open_oracle(config: StudyConfig, folder: Path) -> Any:
    """The study's paired oracle, reloaded from the project in ``folder`` if it has one."""
    import keras_tuner as kt

    adapter.make_keras_tuner_saves_atomic()
    hyperparameters = kt.HyperParameters()
    config.space.from_keras_tuner(hyperparameters)
    base = kt.oracles.RandomSearchOracle
    if config.tuner == "bayesian":
        base = adapter.screened_bayesian_class(kt.oracles.BayesianOptimizationOracle)

    class ScoredPairedOracle(paired_oracle_class(base)):  # type: ignore[misc]
        def score_trial(self, trial: Any) -> None:  # by its last epoch (as Optuna)
            history = trial.metrics.get_history(self.objective.name)
            trial.score = history[-1].value[-1] if history else float("nan")
            trial.best_step = history[-1].step if history else 0

    oracle = ScoredPairedOracle(
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


def claim_blocks(config: StudyConfig, oracle: Any, folder: Path, room: int) -> list[Member]:
    """Up to ``room`` trials: the oracle's retries first, then whole new blocks (kept in the
    project's blocks file)."""
    path = folder / _BLOCKS_FILE
    blocks: dict[str, list[int]] = json.loads(path.read_text()) if path.exists() else {}
    placements = config.space.placement
    asked: list[Member] = []
    while len(asked) < room and (not asked or len(asked) + len(placements) <= room):
        first = oracle.create_trial(f"bnsearch-{len(asked)}")
        if first.status != "RUNNING":
            break  # the oracle has nothing more to try
        if first.trial_id in blocks:  # a trial a killed run left in flight
            asked.append(Member(first, _spec(first, *blocks[first.trial_id])))
            continue
        block = int(first.trial_id)
        seed = trial_seed(config.seed, block)
        # its siblings, queued by the oracle when it proposed it
        members = [first] + [
            oracle.create_trial(f"bnsearch-{len(asked) + 1 + i}")
            for i in range(len(placements) - 1)
        ]
        for trial in members:
            blocks[trial.trial_id] = [block, seed]
            asked.append(Member(trial, _spec(trial, block, seed)))
        write_atomically(path, json.dumps(blocks))
    return asked


def _spec(trial: Any, block: int, seed: int) -> TrialSpec:
    return TrialSpec(int(trial.trial_id), trial_config(trial), seed, block, Phase.SEARCH)
