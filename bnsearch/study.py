"""One study, end to end: data → Optuna study → engine → MLflow, then the summary."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from bnsearch.analysis import Verdict, analyze
from bnsearch.backends import (
    close_stale_trials,
    closed_message,
    open_study,
    results_from_study,
    run_confirmation,
    run_trials,
    search_trial_count,
)
from bnsearch.config import StudyConfig
from bnsearch.data import Dataset, load_dataset
from bnsearch.engines import make_engine
from bnsearch.errors import LockHeldError, StudyFailedError
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
    verdict: Verdict
    report_files: list[Path]
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
        images=config.network.kind == "cnn",
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
    keras_tuner = config.backend == "keras-tuner"
    if config.engine == "population" and config.backend == "optuna":
        from bnsearch.engines._population import check_memory

        check_memory(config.population, dataset, config.network)
    name = config.resolved_study_name
    tracker = MlflowTracker(config.resolved_tracking_uri, name)
    tracker.connect()  # fails before the Optuna storage is touched
    study = None if keras_tuner else open_study(config, dataset)
    if keras_tuner:
        from bnsearch.backends._keras_tuner import prepare_project, results_from_project

        folder = prepare_project(config, dataset)
        where = {"keras_tuner.project": str(folder)}
        existing = len(results_from_project(folder))
    else:
        where = {"optuna.storage": _redact(config.resolved_storage)}
        stale = close_stale_trials(study, tracker)
        if stale and config.verbose:
            print(closed_message(stale), file=out, flush=True)
        existing = len(study.trials)
        if config.target_trials is not None:
            have = search_trial_count(study)
            if have >= config.target_trials:
                if config.verbose:
                    print(
                        f"bnsearch: study {name!r} is up to date ({have} of "
                        f"{config.target_trials} search trials); nothing to do.",
                        file=out,
                        flush=True,
                    )
                return _up_to_date(study, config, name, started)
    parent = tracker.start_study_run(
        run_name=f"study-{time.strftime('%Y%m%d-%H%M%S')}",
        params=config.as_params(),
        tags={
            "optuna.study" if not keras_tuner else "keras_tuner.study": name,
            **where,
            "bnsearch.backend": config.backend,
            "bnsearch.data_fingerprint": dataset.fingerprint,
        },
        dataset=dataset,
    )
    have = 0 if keras_tuner or config.target_trials is None else search_trial_count(study)
    if config.verbose and config.network.kind != "mlp":
        print(
            f"bnsearch: notice: the population engine trains the MLP family only; this "
            f"{config.network.kind} network trains on the Keras engine (one model.fit per trial).",
            file=out,
            flush=True,
        )
    if config.verbose:
        backend = f"Keras Tuner ({config.tuner})" if keras_tuner else "Optuna"
        budget = (
            f"{config.n_trials} trials"
            if keras_tuner or config.target_trials is None
            else f"search trials up to {config.target_trials} (has {have})"
        )
        print(
            f"bnsearch: study {name!r} on {dataset.name} "
            f"({dataset.n_rows} rows, {dataset.n_features} features, {dataset.n_classes} classes, "
            f"fingerprint {dataset.fingerprint}); {budget} by {backend} with "
            f"the {config.engine} engine, {config.network.epochs} epochs each; "
            f"{existing} trials already in the study.",
            file=out,
            flush=True,
        )
    total = config.n_trials if keras_tuner else planned_trials(config, have)
    progress = Progress(total, config.timeout, out) if config.verbose else None
    report = progress.update if progress else None
    try:
        if keras_tuner:
            from bnsearch.backends._keras_tuner import run_keras_tuner

            new_results = run_keras_tuner(config, dataset, tracker, report)
        else:
            new_results = _run_optuna(study, config, dataset, tracker, report, out)
    except KeyboardInterrupt:
        tracker.end_study_run(status="KILLED", tags={"bnsearch.interrupted": "true"})
        raise
    except BaseException:
        tracker.end_study_run(status="FAILED")
        raise
    all_results = results_from_project(folder) if keras_tuner else results_from_study(study)
    table = summarize([r for r in all_results if r.spec.phase == "search"])
    verdict = verdict_for(study, all_results, config)
    report_files = _log_report(tracker, name, verdict, all_results, dataset)
    metrics: dict[str, float] = {
        "trials_added": float(len(new_results)),
        "trials_total": float(len(all_results)),
        "verdict.n_blocks": float(verdict.n_blocks),
    }
    if verdict.primary is not None:
        metrics["verdict.median_difference"] = verdict.primary.median
        metrics["verdict.mean_difference"] = verdict.primary.mean
        metrics["verdict.ci_low"] = verdict.primary.ci_low
        metrics["verdict.ci_high"] = verdict.primary.ci_high
        metrics["verdict.p_holm"] = verdict.primary.p_holm
    verdict_tags = {"bnsearch.verdict": verdict.outcome, "bnsearch.verdict_text": verdict.statement}
    for activation, sub in verdict.by_activation.items():
        verdict_tags[f"bnsearch.verdict.{activation}"] = sub.outcome
        verdict_tags[f"bnsearch.verdict_text.{activation}"] = sub.statement
        if sub.primary is not None:
            metrics[f"verdict.{activation}.median_difference"] = sub.primary.median
            metrics[f"verdict.{activation}.ci_low"] = sub.primary.ci_low
            metrics[f"verdict.{activation}.ci_high"] = sub.primary.ci_high
    for row in table:
        metrics[f"{row.placement}.best_val_loss"] = row.best_val_loss
        metrics[f"{row.placement}.median_val_loss"] = row.median_val_loss
        metrics[f"{row.placement}.best_val_accuracy"] = row.best_val_accuracy
    failed_all = bool(new_results) and all(r.state is TrialState.FAILED for r in new_results)
    tracker.end_study_run(
        status="FAILED" if failed_all else "FINISHED",
        metrics=metrics,
        tags=verdict_tags,
    )
    outcome = StudyOutcome(
        study_name=name,
        new_results=new_results,
        all_results=all_results,
        table=table,
        verdict=verdict,
        report_files=report_files,
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


def prepare_study(config: StudyConfig, stream: TextIO | None = None) -> tuple[int, str]:
    """Create (or check) the Optuna study and the MLflow experiment; train nothing.

    Run once before starting workers on a shared storage: then no two workers race to
    create either. Returns the Optuna study id and the MLflow experiment id.
    """
    out = stream or sys.stdout
    dataset = load_study_dataset(config)
    tracker = MlflowTracker(config.resolved_tracking_uri, config.resolved_study_name)
    tracker.connect()
    study = open_study(config, dataset)
    print(
        f"bnsearch: study {study.study_name!r} is ready: Optuna study id {study._study_id} in "
        f"{_redact(config.resolved_storage)} ({len(study.trials)} trials), MLflow experiment "
        f"id {tracker.experiment_id} at {_redact(config.resolved_tracking_uri)}; start the "
        "workers.",
        file=out,
        flush=True,
    )
    return study._study_id, tracker.experiment_id


def _up_to_date(study: Any, config: StudyConfig, name: str, started: float) -> StudyOutcome:
    results = results_from_study(study)
    return StudyOutcome(
        study_name=name,
        new_results=[],
        all_results=results,
        table=summarize([r for r in results if r.spec.phase == "search"]),
        verdict=verdict_for(study, results, config),
        report_files=[],
        parent_run_id="",
        tracking_uri=config.resolved_tracking_uri,
        storage=config.resolved_storage,
        wall_time_s=time.monotonic() - started,
    )


@contextlib.contextmanager
def study_lock(config: StudyConfig, wait: bool = False) -> Iterator[None]:
    """Hold ``mlruns/locks/<study>.lock`` for the study's run on this machine.

    A second ``study``/``sweep`` of the same study exits at once with LockHeldError
    (exit code 3) instead of interleaving with the first. Workers sharing a PostgreSQL
    storage across machines do not take it: Optuna's storage coordinates them.
    """
    import fcntl

    folder = Path("mlruns") / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{config.resolved_study_name}.lock"
    with open(path, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            raise LockHeldError(
                f"study {config.resolved_study_name!r} is being run by another bnsearch "
                f"process on this machine (lock {path}); wait for it to finish."
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run_optuna(
    study: Any,
    config: StudyConfig,
    dataset: Dataset,
    tracker: MlflowTracker,
    report: Any,
    out: TextIO,
) -> list[TrialResult]:
    engine = make_engine(config.engine, config.population)
    batch_size = config.population if config.engine == "population" else 1

    def log(message: str) -> None:
        if config.verbose:
            print(message, file=out, flush=True)

    results = run_trials(
        study, config, dataset, engine, tracker, report, batch_size=batch_size, log=log
    )
    if results and config.confirm_seeds:
        if config.verbose:
            print(
                f"confirming: each placement's best configuration with "
                f"{config.confirm_seeds} fresh seeds",
                file=out,
                flush=True,
            )
        results += run_confirmation(study, config, dataset, engine, tracker, report)
    return results


def planned_trials(config: StudyConfig, have: int = 0) -> int:
    """Trials this run will add: whole paired blocks (up to ``target_trials`` when set,
    ``have`` being the study's search trials), then the confirmation round."""
    block = len(config.space.placement)
    wanted = config.n_trials if config.target_trials is None else config.target_trials - have
    search = math.ceil(max(wanted, 0) / block) * block
    confirm = config.confirm_seeds * block if search else 0
    return search + confirm


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
    print("", file=out)
    for line in outcome.verdict.summary_lines():
        print(line, file=out)
    ui = f"python -m bnsearch ui --tracking-uri {outcome.tracking_uri}"
    print(f"\nOpen the MLflow UI on these runs:  {ui}", file=out, flush=True)


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _redact(url: str) -> str:
    """Hide a password in a storage URL before it is logged."""
    import re

    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)


def importances_for(study: Any) -> dict[str, float]:
    """Optuna's PED-ANOVA importance of each hyperparameter over the completed trials."""
    import warnings

    import optuna

    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if len(complete) < 4:
        return {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            evaluator = optuna.importance.PedAnovaImportanceEvaluator()
            found = optuna.importance.get_param_importances(study, evaluator=evaluator)
    except (ValueError, RuntimeError):
        # e.g. a parameter that never varied; the verdict stands without importances.
        return {}
    return {name: float(value) for name, value in found.items()}


def verdict_for(study: Any, results: list[TrialResult], config: StudyConfig) -> Verdict:
    """The verdict over the study's search trials and its latest confirmation round."""
    confirm = [r for r in results if r.spec.phase == "confirm"]
    latest = max((r.spec.block or 0 for r in confirm), default=None)
    confirm = [r for r in confirm if r.spec.block == latest]
    verdict = analyze(
        [r for r in results if r.spec.phase == "search"],
        metric=config.metric,
        threshold=config.threshold,
        importances=importances_for(study) if study is not None else {},
        confirmation_phase=confirm,
        seed=config.seed,
    )
    if config.backend == "keras-tuner":
        statement = (
            "no verdict: Keras Tuner trials are not paired blocks (trials differing only in "
            "placement); run the study with --backend optuna for one."
        )
        verdict = dataclasses.replace(verdict, statement=statement)
    return verdict


def _log_report(
    tracker: MlflowTracker,
    study_name: str,
    verdict: Verdict,
    results: list[TrialResult],
    dataset: Dataset,
) -> list[Path]:
    from bnsearch.report import write_report

    folder = Path(tempfile.mkdtemp(prefix="bnsearch-report-"))
    line = (
        f"Data: {dataset.source or dataset.name} ({dataset.n_rows} rows, {dataset.n_features} "
        f"features, {dataset.n_classes} classes, fingerprint {dataset.fingerprint})."
    )
    files = write_report(folder, study_name, verdict, results, line)
    for path in files:
        tracker.log_artifact(path)
    return files


def rebuild_report(
    config: StudyConfig, out_dir: Path | None = None, stream: TextIO | None = None
) -> Verdict:
    """Recompute the verdict of a finished Optuna study from its storage and write the
    report to ``out_dir`` (default ``mlruns/reports/<study>``); also log it to a new MLflow
    run of kind ``report``. Nothing is trained."""
    import optuna

    from bnsearch.errors import ConfigError
    from bnsearch.report import write_report

    out = stream or sys.stdout
    name = config.resolved_study_name
    storage = optuna.storages.RDBStorage(config.resolved_storage)
    names = [s.study_name for s in optuna.get_all_study_summaries(storage, False)]
    if name not in names:
        raise ConfigError(
            f"no study {name!r} in {_redact(config.resolved_storage)}; studies there: "
            f"{', '.join(names) or 'none'} (pass --study-name and --storage)."
        )
    study = optuna.load_study(study_name=name, storage=storage)
    results = results_from_study(study)
    verdict = verdict_for(study, results, config)
    folder = out_dir or Path("mlruns") / "reports" / name
    line = f"Data fingerprint: {study.user_attrs.get('bnsearch.data_fingerprint', 'unknown')}."
    files = write_report(folder, name, verdict, results, line)
    tracker = MlflowTracker(config.resolved_tracking_uri, name)
    tracker.start_study_run(
        run_name=f"report-{time.strftime('%Y%m%d-%H%M%S')}",
        params={"study_name": name, "metric": config.metric, "threshold": config.threshold},
        tags={"bnsearch.kind": "report", "optuna.study": name},
    )
    for path in files:
        tracker.log_artifact(path)
    tracker.end_study_run(
        tags={"bnsearch.verdict": verdict.outcome, "bnsearch.verdict_text": verdict.statement}
    )
    for text in verdict.summary_lines():
        print(text, file=out)
    print(f"report written to {folder}/report.html", file=out, flush=True)
    return verdict
