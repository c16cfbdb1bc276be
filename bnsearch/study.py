"""One study, end to end: data → Optuna study → engine → MLflow, then the summary."""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from typing import Any, TextIO

from bnsearch.backends import open_study, results_from_study, run_trials
from bnsearch.config import StudyConfig
from bnsearch.data import Dataset, load_dataset
from bnsearch.engines import make_engine
from bnsearch.errors import StudyFailedError
from bnsearch.results import TrialResult, TrialState
from bnsearch.summary import PlacementSummary, Progress, format_table, summarize
from bnsearch.tracking import MlflowTracker

__all__ = ["StudyOutcome", "load_study_dataset", "run_study"]


@dataclass
class StudyOutcome:
    study_name: str
    new_results: list[TrialResult]
    all_results: list[TrialResult]
    table: list[PlacementSummary]
    parent_run_id: str
    tracking_uri: str
    storage: str
    wall_time_s: float


def load_study_dataset(config: StudyConfig) -> Dataset:
    dataset = load_dataset(
        config.data,
        config.target,
        standardize=config.standardize,
        validation_split=config.network.validation_split,
    )
    dataset.check_trainable(config.network.validation_split, config.network.batch_size)
    return dataset


def run_study(config: StudyConfig, stream: TextIO | None = None) -> StudyOutcome:
    """Run ``config.n_trials`` more trials of the study and log them to MLflow.

    Raises :class:`StudyFailedError` when trials ran and every one of them failed.
    """
    out = stream or sys.stdout
    started = time.monotonic()
    dataset = load_study_dataset(config)
    engine = make_engine(config.engine, config.population)
    study = open_study(config, dataset)
    tracker = MlflowTracker(config.resolved_tracking_uri, study.study_name)
    parent = tracker.start_study_run(
        run_name=f"study-{time.strftime('%Y%m%d-%H%M%S')}",
        params=config.as_params(),
        tags={
            "optuna.study": study.study_name,
            "optuna.storage": _redact(config.resolved_storage),
            "bnsearch.data_fingerprint": dataset.fingerprint,
        },
        dataset=dataset,
    )
    if config.verbose:
        print(
            f"bnsearch: study {study.study_name!r} on {dataset.name} "
            f"({dataset.n_rows} rows, {dataset.n_features} features, {dataset.n_classes} classes, "
            f"fingerprint {dataset.fingerprint}); {config.n_trials} trials with the "
            f"{config.engine} engine, {config.network.epochs} epochs each; "
            f"{len(study.trials)} trials already in the study.",
            file=out,
            flush=True,
        )
    progress = Progress(config.n_trials, config.timeout, out) if config.verbose else None
    try:
        new_results = run_trials(
            study,
            config,
            dataset,
            engine,
            tracker,
            progress.update if progress else None,
            batch_size=config.population if config.engine == "population" else 1,
        )
    except KeyboardInterrupt:
        tracker.end_study_run(status="KILLED", tags={"bnsearch.interrupted": "true"})
        raise
    except BaseException:
        tracker.end_study_run(status="FAILED")
        raise
    all_results = results_from_study(study)
    table = summarize(all_results)
    metrics: dict[str, float] = {
        "trials_added": float(len(new_results)),
        "trials_total": float(len(all_results)),
    }
    for row in table:
        metrics[f"{row.placement}.best_val_loss"] = row.best_val_loss
        metrics[f"{row.placement}.median_val_loss"] = row.median_val_loss
        metrics[f"{row.placement}.best_val_accuracy"] = row.best_val_accuracy
    failed_all = bool(new_results) and all(r.state is TrialState.FAILED for r in new_results)
    tracker.end_study_run(status="FAILED" if failed_all else "FINISHED", metrics=metrics)
    outcome = StudyOutcome(
        study_name=study.study_name,
        new_results=new_results,
        all_results=all_results,
        table=table,
        parent_run_id=parent,
        tracking_uri=config.resolved_tracking_uri,
        storage=config.resolved_storage,
        wall_time_s=time.monotonic() - started,
    )
    if config.verbose:
        print_summary(outcome, out)
    if failed_all:
        reasons = sorted({r.fail_reason or "unknown" for r in new_results})
        raise StudyFailedError(
            f"all {len(new_results)} trials failed ({'; '.join(reasons)[:300]}); check the data "
            "and the learning-rate range."
        )
    return outcome


def print_summary(outcome: StudyOutcome, out: TextIO) -> None:
    n_new = len(outcome.new_results)
    print(
        f"\nStudy {outcome.study_name!r}: {n_new} trials added in "
        f"{outcome.wall_time_s:.0f} s, {len(outcome.all_results)} in total "
        "(final-epoch validation metrics of completed trials):\n",
        file=out,
    )
    print(format_table(outcome.table), file=out)
    best = [r for r in outcome.all_results if r.value is not None and math.isfinite(r.value)]
    if best:
        top = min(best, key=lambda r: r.value)
        params = ", ".join(f"{k}={_short(v)}" for k, v in top.config.as_params().items())
        print(f"\nBest trial {top.spec.number}: val_loss {top.value:.4f} with {params}", file=out)
    ui = f"python -m bnsearch ui --tracking-uri {outcome.tracking_uri}"
    print(f"\nOpen the MLflow UI on these runs:  {ui}", file=out, flush=True)


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _redact(url: str) -> str:
    """Hide a password in a storage URL before it is logged."""
    import re

    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)
