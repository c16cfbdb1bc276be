"""One study, end to end: data → backend → engine → MLflow, then the verdict and summary."""

from __future__ import annotations

import contextlib
import fcntl
import math
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from bnsearch._quiet import import_tensorflow_quietly
from bnsearch._redact import redact_url
from bnsearch.backends import Backend, backend_class, cannot_settle_notice, make_backend, read_study
from bnsearch.config import DEFAULT_STORE_DIR, StudyConfig, default_tracking_uri, needs_tensorflow
from bnsearch.data import Dataset, load_dataset
from bnsearch.engines import make_engine, network_notice, resolve
from bnsearch.errors import LockHeldError, StoreError, StudyFailedError, naming_full_disk
from bnsearch.report import (
    WIDTH,
    PlacementSummary,
    Progress,
    format_table,
    outcome_label,
    plain_ascii,
    run_note,
    summarize,
    table_metrics,
    verdict_details,
    verdict_glance,
    write_report,
)
from bnsearch.stats import Outcome, Verdict, diverged, loss_text, verdict_for
from bnsearch.tracking import MlflowTracker, TrackingUnavailable, run_name, runs_url
from bnsearch.trial import Phase, TrialResult, TrialState, keys


@dataclass
class StudyOutcome:
    """What a study run returns (:func:`run_study`): its trials, its table and its verdict.

    Attributes:
        study_name: the study's name (its Optuna study and MLflow experiment).
        new_results: the trials this run added, in the order they were told.
        all_results: every trial the study holds, this run's included.
        table: one row per placement over the search trials (trials by state, best and
            median final validation loss and accuracy).
        verdict: both answers, "does BN help here?" (``verdict.bn``) and "before or
            after?" (``verdict.placement``), with every comparison.
        parent_run_id: the MLflow parent run of this run ("" when nothing was run).
        tracking_uri: the MLflow tracking URI it was logged to.
        storage: the Optuna storage URL the study is kept in.
        wall_time_s: the run's time in seconds.
        report_files: the report's files logged as artifacts of the parent run.
        experiment_id: the MLflow experiment's id ("" when nothing was run).
    """

    study_name: str
    new_results: list[TrialResult]
    all_results: list[TrialResult]
    table: list[PlacementSummary]
    verdict: Verdict
    parent_run_id: str
    tracking_uri: str
    storage: str
    wall_time_s: float
    report_files: list[str] = field(default_factory=list)
    experiment_id: str = ""


def load_study_dataset(config: StudyConfig) -> Dataset:
    dataset = load_dataset(
        config.data,
        config.target,
        standardize=config.standardize,
        validation_split=config.network.validation_split,
        images=config.network.images,
        task=config.task,
        shuffle=config.shuffle,
        shuffle_seed=config.seed,
    )
    dataset.check_trainable(config.network.validation_split, config.network.batch_size)
    return dataset


def run_study(
    config: StudyConfig, stream: TextIO | None = None, importances: bool = True
) -> StudyOutcome:
    """Run (or resume) a study as ``python -m bnsearch study`` does.

    Args:
        config: the study's settings (the CLI's flags and a study file's keys).
        stream: where progress and the summary go (stdout) unless ``config.verbose`` is off.
        importances: workers turn them off (``report`` computes them).

    Returns:
        The :class:`~bnsearch.study.StudyOutcome`: trials, table, verdict, where logged.

    Raises:
        ConfigError: a setting cannot be used with this data or network.
        DataError: the data cannot be loaded or trained on.
        StoreError: a store cannot be used (``StoreFullError``: a full disk, raised once
            the run's batch is stored).
        StudyFailedError: every trial of the run failed.

    Examples:
        >>> import os, tempfile
        >>> import bnsearch
        >>> os.chdir(tempfile.mkdtemp())  # its stores go to ./mlruns
        >>> outcome = bnsearch.run_study(bnsearch.StudyConfig(
        ...     n_trials=3, confirm_seeds=0, verbose=False, until="budget",
        ...     network=bnsearch.NetworkSettings(epochs=1, hidden_units=(4,))))
        >>> print(len(outcome.new_results), outcome.verdict.placement.outcome)
        3 insufficient
    """
    say = _Speaker(config.verbose, stream or sys.stdout)
    started = time.monotonic()
    dataset = load_study_dataset(config)
    say(_data_line(config, dataset))  # the first lines come before TensorFlow loads
    tracker = _tracker(config)  # fails before the backend's store is touched or TF loads
    if needs_tensorflow(config.engine):  # an engine registered without it trains without it
        import_tensorflow_quietly()
    config = resolve(config, dataset)
    engine = make_engine(config.engine, config.population)
    say(engine.check_fits(dataset, config.network))  # a smaller population, if need be
    backend = make_backend(config, dataset, engine, tracker)
    for notice in backend.open():
        say(notice)
    say(_catch_up(tracker, backend))
    if done := backend.up_to_date():
        say(done)
        return _outcome(config, backend, [], "", started, importances, dataset)
    tracker.start_study_run(
        run_name=run_name("study"),
        params=config.as_params(),
        tags={
            **backend.store_tags(),
            keys.BACKEND: config.backend,
            keys.DATA_FINGERPRINT: dataset.fingerprint,
        },
        dataset=dataset,
    )
    say(network_notice(tracker, config, dataset))  # and a --model's layers as model.txt
    planned, budget = backend.budget()
    say(_introduction(config, backend, budget))
    progress = Progress(planned, config.timeout, say.stream) if config.verbose else None
    with tracker.study_run_guard():
        new_results = backend.run(progress, say)
    run_id = tracker.parent_run_id or ""
    outcome = _outcome(config, backend, new_results, run_id, started, importances, dataset)
    outcome.experiment_id = str(tracker.experiment_id)
    backend.record_verdict(outcome.verdict)
    failed_all = bool(new_results) and all(r.state is TrialState.FAILED for r in new_results)
    say(_end_study_run(tracker, backend, outcome, dataset, "FAILED" if failed_all else "FINISHED"))
    if config.verbose:
        print_summary(outcome, say.stream, config.details)
    if failed_all:
        raise _all_failed(new_results)
    if (full := tracker.full) is not None:
        raise full
    return outcome


def _end_with_verdict(
    tracker: MlflowTracker,
    verdict: Verdict,
    table: list[PlacementSummary] | None = None,
    metrics: Mapping[str, float] | None = None,
    status: str = "FINISHED",
) -> None:
    """End the parent run with the verdict, its note and its name written by the report."""
    note = run_note(tracker.experiment_name, verdict, table or [])
    values = {**table_metrics(table or []), **(metrics or {})}
    tracker.end_study_run_with_verdict(verdict, note, outcome_label(verdict), values, status)


def _end_study_run(
    tracker: MlflowTracker, backend: Backend, outcome: StudyOutcome, dataset: Dataset, status: str
) -> str | None:
    """Back-fill MLflow, log the report, end the parent run; a line if MLflow is away."""
    added = {"trials_added": len(outcome.new_results), "trials_total": len(outcome.all_results)}
    try:
        if tracker.pending:
            tracker.sync(backend.stored_trials)
        outcome.report_files = _log_report(tracker, outcome, dataset)
        _end_with_verdict(tracker, outcome.verdict, outcome.table, added, status)
    except TrackingUnavailable:
        if tracker.full is None:  # a full disk is raised by run_study instead
            return (
                "bnsearch: MLflow did not get the end of this run (the verdict below stands: "
                "the study's store holds every result); the next study run or python -m "
                "bnsearch sync writes what is missing."
            )
    return None


def _catch_up(tracker: MlflowTracker, backend: Backend) -> str | None:
    """MLflow caught up with the store: what changed, or None; a full disk stops it here."""
    try:
        return tracker.sync(backend.stored_trials).message()
    except TrackingUnavailable:
        if (full := tracker.full) is not None:
            raise full from None
        return None


def _all_failed(results: list[TrialResult]) -> StudyFailedError:
    reasons = sorted({r.fail_reason or "unknown" for r in results})
    return StudyFailedError(
        f"all {len(results)} trials failed ({'; '.join(reasons)[:300]}); check the data "
        "and the learning-rate range."
    )


@dataclass
class _Speaker:
    """Prints a study's lines unless it is quiet (``None`` lines are skipped)."""

    verbose: bool
    stream: TextIO

    def __call__(self, line: str | None) -> None:
        if self.verbose and line:
            print(line, file=self.stream, flush=True)


#: Feature scales this many times apart make the first BN mostly an input standardiser.
SCALE_SPREAD_WARNING = 100.0


def scale_notice(config: StudyConfig, dataset: Dataset) -> str | None:
    """One line, before training, when the raw features' scales differ by orders of
    magnitude (the placement verdict would then mostly measure input scaling)."""
    if config.standardize or config.network.images:  # pixels: one scale, no check
        return None
    spread = dataset.scale_spread(config.network.validation_split)
    if spread <= SCALE_SPREAD_WARNING:
        return None
    control = (
        "" if "input" in config.space.placement else " or add the `input` placement as a control"
    )
    return (
        f"bnsearch: notice: the features' standard deviations span {spread:.3g}x without "
        "--standardize, so the placement verdict will largely measure input scaling; "
        f"pass --standardize{control}."
    )


def _data_line(config: StudyConfig, dataset: Dataset) -> str:
    """The study's first line (its data), then the data's notices, one line each."""
    line = (
        f"bnsearch: study {config.resolved_study_name!r} on {dataset.name} "
        f"({dataset.description}, fingerprint {dataset.fingerprint})"
    )
    notices = (dataset.split_warning, dataset.target_notice(), scale_notice(config, dataset))
    return "\n".join([line, *(notice for notice in notices if notice)])


def _introduction(config: StudyConfig, backend: Backend, budget: str) -> str:
    """The run's plan, and on a line of its own a cap that can never settle."""
    line = (
        f"bnsearch: {budget} by {backend.name} with the {config.engine} engine, "
        f"{config.network.epochs} epoch{'s' if config.network.epochs != 1 else ''} each; "
        f"{backend.existing_trials()} trials already in the study."
    )
    paired = backend.unpaired_reason is None
    notice = cannot_settle_notice(config, backend.results()) if paired else None
    return f"{line}\n{notice}" if notice else line


def _outcome(
    config: StudyConfig,
    backend: Backend,
    new_results: list[TrialResult],
    parent_run_id: str,
    started: float,
    importances: bool,
    dataset: Dataset,
) -> StudyOutcome:
    results = backend.results()
    verdict = verdict_of(
        config,
        results,
        backend.importances() if importances else {},
        backend.unpaired_reason,
        dataset.degenerate_validation,
    )
    return StudyOutcome(
        study_name=config.resolved_study_name,
        new_results=new_results,
        all_results=results,
        table=summarize([r for r in results if r.spec.phase == Phase.SEARCH]),
        verdict=verdict,
        parent_run_id=parent_run_id,
        tracking_uri=config.resolved_tracking_uri,
        storage=config.resolved_storage,
        wall_time_s=time.monotonic() - started,
    )


def verdict_of(
    config: StudyConfig,
    results: list[TrialResult],
    importances: dict[str, float] | None = None,
    unpaired_reason: str | None = None,
    no_ranking_reason: str | None = None,
) -> Verdict:
    """The verdict on ``results`` by the study's settings (metric, threshold, seed, until,
    question), or why none is given."""
    given = {k: getattr(config, k) for k in ("metric", "threshold", "seed", "until", "question")}
    return verdict_for(
        results, unpaired_reason, no_ranking_reason, importances=importances, **given
    )


def _tracker(config: StudyConfig) -> MlflowTracker:
    """The study's MLflow tracker, connected once the backend's store has answered."""
    backend_class(config).probe(config)
    tracker = MlflowTracker(config.resolved_tracking_uri, config.resolved_study_name)
    tracker.connect()
    return tracker


def prepare_study(config: StudyConfig, stream: TextIO | None = None) -> None:
    """Create (or check) the study's store and the MLflow experiment, once before workers
    start (so none race to create either)."""
    dataset = load_study_dataset(config)
    tracker = _tracker(config)
    where = backend_class(config).prepare(config, dataset)
    print(
        f"bnsearch: study {config.resolved_study_name!r} is ready in {where}, MLflow "
        f"experiment id {tracker.experiment_id} at {redact_url(config.resolved_tracking_uri)}; "
        "start the workers.",
        file=stream or sys.stdout,
        flush=True,
    )


@contextlib.contextmanager
def study_lock(config: StudyConfig) -> Iterator[None]:
    """Hold ``mlruns/locks/<study>.lock`` for the study's run on this machine: a second run
    of the same study exits at once with LockHeldError."""
    path = config.path_under(DEFAULT_STORE_DIR / "locks", ".lock")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (NotADirectoryError, FileExistsError):
        raise StoreError(
            f"{DEFAULT_STORE_DIR} must be a folder (bnsearch's local store), but a file of that "
            "name is in the way here; move it, or run bnsearch from another folder."
        ) from None
    with open(path, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockHeldError(
                f"study {config.resolved_study_name!r} is being run by another bnsearch "
                f"process on this machine (lock {path}); wait for it to finish."
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def print_summary(outcome: StudyOutcome, out: TextIO, details: bool = False) -> None:
    """Print the end of a study as the terminal shows it (about 22 plain ASCII lines of at
    most :data:`~bnsearch.report.WIDTH` characters; ``details``: the full statistics too)."""
    n_new = len(outcome.new_results)
    head = (
        f"Study {outcome.study_name!r}: +{n_new} trials in {outcome.wall_time_s:.0f} s, "
        f"{len(outcome.all_results)} in total; final metrics of completed trials"
    )
    lines = ["", *textwrap.wrap(head, WIDTH, subsequent_indent="  ")]
    table = format_table(outcome.table).splitlines()
    lines += table[:1] + table[2:]  # the rule under the header only spaces it out here
    lines += _best_trial_lines(outcome.all_results)
    lines += ["", *verdict_glance(outcome.verdict)]
    lines += textwrap.wrap(_failures_note(outcome) or "", WIDTH, subsequent_indent="  ")
    if details:
        lines += ["", "Full statistics:", *verdict_details(outcome.verdict), ""]
    ui = f"python -m bnsearch ui --study-name {outcome.study_name}"
    if outcome.tracking_uri != default_tracking_uri():
        ui += f" --tracking-uri {redact_url(outcome.tracking_uri)}"
    # The footer follows the verdict without a blank line: the end of a study fits 25 lines.
    lines += textwrap.wrap(
        f"MLflow UI: {ui}", WIDTH, subsequent_indent="  ", break_long_words=False
    )
    if outcome.experiment_id:
        url = runs_url(outcome.experiment_id)  # a long one on a line of its own
        lines += [f"  then open {url}"] if len(url) <= WIDTH - 12 else ["  then open", f"  {url}"]
    print(*map(plain_ascii, lines), sep="\n", file=out, flush=True)


def _failures_note(outcome: StudyOutcome) -> str | None:
    """Why the verdict has too few blocks when failed trials cost it blocks, else None."""
    verdict = outcome.verdict
    if all(answer.outcome != Outcome.INSUFFICIENT for answer in verdict.answers):
        return None
    search = [r for r in outcome.all_results if r.spec.phase == Phase.SEARCH]
    failed = [r for r in search if r.state is TrialState.FAILED]
    blocks = len({r.spec.block for r in search})
    if not failed or verdict.n_blocks >= blocks:
        return None
    ran_away = sum(1 for r in failed if diverged(r))
    how = f" ({ran_away} diverged)" if ran_away else ""
    hint = "narrow the learning-rate range" if ran_away else "see the fail reasons in MLflow"
    return (
        f"Too few blocks because {len(failed)} of {len(search)} search trials failed{how}: "
        f"only {verdict.n_blocks} of {blocks} blocks are left to compare; {hint}."
    )


def _best_trial_lines(results: list[TrialResult]) -> list[str]:
    best = [(r.value, r) for r in results if r.value is not None and math.isfinite(r.value)]
    if not best:
        return []
    value, top = min(best, key=lambda scored: scored[0])
    shown = {
        k: f"{v:.4g}" if isinstance(v, float) else v for k, v in top.config.as_params().items()
    }
    params = [f"{k}={v}" for k, v in shown.items() if k != "placement"]
    head = f"Best trial {top.spec.number} ({top.config.placement}): val_loss {loss_text(value)}"
    return textwrap.wrap(
        f"{head}; {', '.join(params)}", WIDTH, subsequent_indent="  ", break_long_words=False
    )


def _log_report(tracker: MlflowTracker, outcome: StudyOutcome, dataset: Dataset) -> list[str]:
    """Log the report, written in a temporary folder, to the parent run; its files' names."""
    line = (
        f"Data: {dataset.source or dataset.name} ({dataset.n_rows} rows, {dataset.n_features} "
        f"features, {dataset.n_classes} classes, fingerprint {dataset.fingerprint})."
    )
    with tempfile.TemporaryDirectory(prefix="bnsearch-report-") as folder:
        verdict, results = outcome.verdict, outcome.all_results
        with naming_full_disk(f"the report's temporary folder {folder}", folder):
            files = write_report(Path(folder), outcome.study_name, verdict, results, line)
        for path in files:
            tracker.log_artifact(path)
    return [path.name for path in files]


def sync_study(config: StudyConfig) -> None:
    """Make the study's MLflow experiment agree with its store (see
    :meth:`MlflowTracker.sync`); trains nothing."""
    report = _tracker(config).sync(read_study(config).stored_trials)
    name = config.resolved_study_name
    print(report.message() or f"bnsearch: MLflow already agrees with study {name!r}.", flush=True)


def rebuild_report(
    config: StudyConfig, out_dir: Path | None = None, stream: TextIO | None = None
) -> Verdict:
    """Recompute a study's verdict from its store, write the report to ``out_dir`` (default
    ``mlruns/reports/<study>``) and log it to a new MLflow run of kind ``report``."""
    out, name = stream or sys.stdout, config.resolved_study_name
    store = read_study(config)
    results = store.stored_trials().results
    verdict = verdict_of(
        config, results, store.importances(), store.unpaired_reason, store.no_ranking_reason
    )
    folder = out_dir or config.path_under(DEFAULT_STORE_DIR / "reports")
    line = f"Data fingerprint: {store.data_fingerprint}."
    with naming_full_disk(f"the report folder {folder}", folder):
        files = write_report(folder, name, verdict, results, line)
    tracker = MlflowTracker(config.resolved_tracking_uri, name)
    tracker.start_study_run(
        run_name=run_name("report"),
        params={"study_name": name, "metric": config.metric, "threshold": config.threshold},
        tags={keys.KIND: "report", **store.tags},
    )
    for path in files:
        tracker.log_artifact(path)
    _end_with_verdict(tracker, verdict)
    lines = verdict_glance(verdict)
    if config.details:
        lines += ["", "Full statistics:", *verdict_details(verdict)]
    print(*lines, f"report written to {folder}/report.html", sep="\n", file=out, flush=True)
    return verdict
