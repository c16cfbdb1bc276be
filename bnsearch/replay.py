"""``python -m bnsearch replay``: train one logged trial again from its configuration, seed
and (population engine) batch, compare it epoch by epoch and log a run of kind ``replay``;
what to expect on each engine: docs/guides/review-replay-export.md."""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, replace
from typing import TextIO

from bnsearch.backends import read_study
from bnsearch.config import StudyConfig
from bnsearch.engines import make_engine
from bnsearch.errors import ConfigError
from bnsearch.stats import loss_text
from bnsearch.study import load_study_dataset
from bnsearch.tracking import MlflowTracker, run_name
from bnsearch.trial import METRICS, TASK_METRICS, TrialResult, TrialSpec, TrialState, keys

#: Every per-epoch metric a trial may hold (a regression's ``mae`` among them).
_ALL_METRICS = (*METRICS, *TASK_METRICS)
#: Relative difference within which a replay on the trial's own engine counts as the same.
REPLAY_TOLERANCE = 1e-4


@dataclass(frozen=True)
class Replay:
    original: TrialResult
    replayed: TrialResult
    engine: str
    metric: str  # where the largest relative difference is
    epoch: int
    abs_difference: float
    rel_difference: float
    run_id: str | None
    trained_with: int = 1  # trials trained together: its recorded batch, or 1 (alone)

    @property
    def same_engine(self) -> bool:
        return self.engine == self.original.engine

    @property
    def compared_epochs(self) -> int:
        """Epochs both runs trained (only these are compared)."""
        return min(self.original.epochs_trained, self.replayed.epochs_trained)

    @property
    def complete(self) -> bool:
        """The replay trained at least the epochs the original did (a pruned original
        stopped early; the replay is not pruned) without failing where it did not."""
        failed = TrialState.FAILED
        newly_failed = self.replayed.state is failed and self.original.state is not failed
        return self.replayed.epochs_trained >= self.original.epochs_trained and not newly_failed

    @property
    def reproduced(self) -> bool:
        return (
            self.same_engine
            and self.complete
            and self.compared_epochs > 0
            and self.rel_difference <= REPLAY_TOLERANCE
        )


def _largest_difference(
    original: TrialResult, replayed: TrialResult
) -> tuple[str, int, float, float]:
    """(metric, epoch, absolute, relative) of the largest relative per-epoch difference."""
    worst = ("val_loss", 0, 0.0, 0.0)
    for name in _ALL_METRICS:
        for epoch, (a, b) in enumerate(
            zip(original.history.get(name, []), replayed.history.get(name, []), strict=False)
        ):
            if not (math.isfinite(a) and math.isfinite(b)):
                continue
            absolute = abs(a - b)
            relative = absolute / max(abs(a), 1e-12)
            if relative > worst[3]:
                worst = (name, epoch, absolute, relative)
    return worst


def _find(config: StudyConfig, results: list[TrialResult], number: int) -> TrialResult:
    for result in results:
        if result.spec.number == number:
            return result
    known = sorted(r.spec.number for r in results)
    span = f"{known[0]}..{known[-1]}" if known else "none"
    raise ConfigError(
        f"study {config.resolved_study_name!r} has no finished trial {number} (trials with a "
        f"result: {span}); pick one with --trial."
    )


def _recorded_batch(
    original: TrialResult, results: list[TrialResult], engine: str, alone: bool
) -> tuple[list[TrialSpec], str]:
    """The specs the trial was trained among (``[]``: alone), and where it is replayed."""
    if alone or engine != "population" or original.engine != "population":
        return [], "alone"
    if not original.batch:
        return [], "alone (the study predates batch records)"
    by_number = {r.spec.number: r.spec for r in results}
    if missing := [n for n in original.batch if n not in by_number]:
        shown = ", ".join(str(n) for n in missing[:5])
        return [], f"alone (trial(s) {shown} of its batch have no stored result)"
    size = f"{len(original.batch)} trials in a population of {original.population}"
    return [by_number[n] for n in original.batch], f"in its batch as trained ({size})"


def replay_trial(
    config: StudyConfig,
    number: int,
    engine: str | None = None,
    stream: TextIO | None = None,
    alone: bool = False,
) -> Replay:
    """Train trial ``number`` of the study again (on ``engine``, default the one that
    trained it; a population-engine trial among its recorded batch unless ``alone``), print
    the comparison, and log the replay to MLflow."""
    out = stream or sys.stdout
    results = read_study(config).stored_trials().results
    original = _find(config, results, number)
    spec, name = original.spec, engine or original.engine
    dataset = load_study_dataset(config)
    batch, where = _recorded_batch(original, results, name, alone)
    size = original.population if batch else 1
    print(
        f"bnsearch: replaying trial {number} ({spec.config.placement}, seed {spec.seed}, "
        f"trained by the {original.engine} engine) {where} on the {name} engine ...",
        file=out,
        flush=True,
    )
    trainer = make_engine(name, max_population=size, population_size=size if batch else None)
    trained = trainer.train(batch or [spec], dataset, config.network).results
    replayed = next(r for r in trained if r.spec.number == number)
    replay = Replay(original, replayed, name, *_largest_difference(original, replayed), None)
    replay = replace(replay, run_id=_log(config, replay), trained_with=len(batch) or 1)
    _print(replay, out)
    return replay


def _log(config: StudyConfig, replay: Replay) -> str:
    tracker = MlflowTracker(config.resolved_tracking_uri, config.resolved_study_name)
    spec, replayed = replay.original.spec, replay.replayed
    run_id = tracker.start_study_run(
        run_name=run_name("replay", spec),
        params={
            **spec.config.as_params(),
            "seed": spec.seed,
            "engine": replay.engine,
            "population": replayed.population,
            "trained_with": len(replayed.batch) or 1,
        },
        tags={
            keys.KIND: "replay",
            keys.REPLAYS_TRIAL: str(spec.number),
            keys.REPLAYS_RUN: tracker.trial_run_id(spec.number) or "",
        },
    )
    with tracker.study_run_guard():
        for step in range(replayed.epochs_trained):
            values = {m: replayed.history[m][step] for m in _ALL_METRICS if m in replayed.history}
            tracker.log_epoch(run_id, step, values)
        tracker.end_study_run(
            metrics={
                "replay.max_abs_difference": replay.abs_difference,
                "replay.max_rel_difference": replay.rel_difference,
            },
            tags={keys.REPLAY_WORST: f"{replay.metric} epoch {replay.epoch}"},
        )
    return run_id


def _print(replay: Replay, out: TextIO) -> None:
    original, replayed = replay.original, replay.replayed
    print(f"{'epoch':>5}  {'metric':<13}{'logged':>12}{'replayed':>12}{'difference':>13}", file=out)
    # A regression's second metric is the mean absolute error (its accuracy is NaN).
    second = "val_mae" if "val_mae" in original.history else "val_accuracy"
    for epoch in range(max(original.epochs_trained, replayed.epochs_trained)):
        for name in ("val_loss", second):
            a = original.history.get(name, [])
            b = replayed.history.get(name, [])
            if epoch < len(a) and epoch < len(b):
                logged, again = loss_text(a[epoch], 6), loss_text(b[epoch], 6)
                print(
                    f"{epoch:>5}  {name:<13}{logged:>12}{again:>12}{b[epoch] - a[epoch]:>+13.2e}",
                    file=out,
                )
    if not replay.complete:
        why = replayed.fail_reason or f"{replayed.state.value.lower()} trial"
        print(
            f"bnsearch: the replay trained {replayed.epochs_trained} epoch(s) "
            f"({replayed.state.value.lower()}) where the original trained "
            f"{original.epochs_trained} ({original.state.value.lower()}): {why}; "
            f"{replay.compared_epochs} epoch(s) compared, so this is not a reproduction. "
            "Replay with the study's own settings (drop the network flags) to compare.",
            file=out,
        )
    print(
        f"largest difference: {replay.metric} at epoch {replay.epoch}: "
        f"{replay.abs_difference:.3g} ({replay.rel_difference:.3g} relative); {_verdict(replay)}. "
        f"Logged as MLflow run {replay.run_id}.",
        file=out,
        flush=True,
    )


def _verdict(replay: Replay) -> str:
    if replay.reproduced:
        return f"reproduced within {REPLAY_TOLERANCE:g} relative"
    if not replay.complete:
        return "not reproduced (see above)"
    if replay.same_engine and replay.engine == "population" and replay.trained_with == 1:
        return (
            f"NOT within {REPLAY_TOLERANCE:g} relative: the trial was trained among "
            f"{len(replay.original.batch) or 'other'} members, and a population's compiled "
            "graph depends on its size and the placements it holds, so its rounding differs "
            "from a population of one; high learning rates on unscaled inputs amplify that "
            "over the epochs (a replay without --alone trains its recorded batch)"
        )
    if replay.same_engine:
        return f"NOT within {REPLAY_TOLERANCE:g} relative"
    return (
        "engines differ (their dropout masks and batch order are their own): not comparable "
        "epoch by epoch"
    )
