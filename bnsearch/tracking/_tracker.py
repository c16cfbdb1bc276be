"""MLflow tracking: one experiment per study, a parent run per invocation, a child run per trial.

Everything goes through ``MlflowClient`` with explicit run ids (children point at the parent
with the ``mlflow.parentRunId`` tag), never through thread-local active-run state, so several
trials can be open at once. This module knows TrialSpecs and TrialResults, nothing of Optuna
or Keras Tuner.

Default store: ``sqlite:///mlruns/mlflow.db`` with artifacts under ``mlruns/artifacts``
(MLflow no longer accepts a plain file store, so the experiment's artifact location is set
explicitly). ``MLFLOW_TRACKING_URI`` or ``--tracking-uri`` override it.

The backend's store (the Optuna study, the Keras Tuner project) holds every result; MLflow
is its view. So every MLflow call is retried with a bounded backoff (waits of
:data:`RETRY_DELAYS_S`), and a trial whose run cannot be written when MLflow stays away
trains on regardless: the tracker says so once, fails further calls at once for
:data:`OFFLINE_S` seconds, and :meth:`MlflowTracker.sync` (run at the start of every study
and by ``python -m bnsearch sync``) later creates or completes the runs the store has and
MLflow lacks. A store that cannot be reached at the start fails within about 10 s
(:func:`bnsearch.reachable.probe`), before anything is written.
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from bnsearch._reachable import probe
from bnsearch._redact import redact_text, redact_url
from bnsearch.data import Dataset
from bnsearch.errors import StoreError
from bnsearch.trial import METRICS, StoredTrials, TrialResult, TrialSpec, TrialState

if TYPE_CHECKING:
    from bnsearch.stats import Verdict

__all__ = [
    "OFFLINE_S",
    "RETRY_DELAYS_S",
    "MlflowTracker",
    "SyncReport",
    "TrackingUnavailable",
    "existing_experiment_id",
    "relocate_artifacts",
    "runs_url",
    "ui_command",
    "ui_environment",
]

#: Experiment metadata MLflow's UI reads: a model-training experiment, not a GenAI one.
_EXPERIMENT_TAGS = {"mlflow.experimentKind": "custom_model_development"}

#: Waits between the tries of one MLflow call: four tries within ~3.5 s plus the calls' own
#: timeouts (``MLFLOW_HTTP_REQUEST_TIMEOUT``, 10 s unless set).
RETRY_DELAYS_S = (0.5, 1.0, 2.0)
#: After a call gave up, further calls fail at once for this long, so a study whose MLflow
#: is away does not wait out every call's retries.
OFFLINE_S = 30.0
#: How much of a trial's per-epoch history its run already holds.
HistoryLogged = Literal["none", "some", "all"]

# MLflow's own HTTP retries would wait minutes per call; bnsearch retries the call itself.
_HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
}

# Rows of the data kept with a logged model as its input example.
INPUT_EXAMPLE_ROWS = 5


class TrackingUnavailable(StoreError):
    """MLflow did not answer a call after its retries; what it did not get is back-filled
    by :meth:`MlflowTracker.sync`."""


@dataclass
class SyncReport:
    """What :meth:`MlflowTracker.sync` changed: runs created from the store's results,
    running runs completed from them, and abandoned runs ended."""

    created: int = 0
    completed: int = 0
    closed: int = 0

    def message(self) -> str | None:
        if not (self.created or self.completed or self.closed):
            return None
        return (
            f"bnsearch: MLflow caught up with the study's store: {self.created} trial runs "
            f"created, {self.completed} completed from stored results, {self.closed} "
            "abandoned runs ended."
        )


def _is_permanent(error: Exception) -> bool:
    """A refusal that another try cannot change (a bad request, a missing run)."""
    from mlflow.exceptions import MlflowException

    if not isinstance(error, MlflowException):
        return False
    status = error.get_http_status_code()
    return 400 <= status < 500 and status != 429


_STATUS = {
    TrialState.COMPLETE: "FINISHED",
    TrialState.PRUNED: "KILLED",
    TrialState.FAILED: "FAILED",
}


def ui_command(tracking_uri: str, host: str = "127.0.0.1", port: int = 5000) -> list[str]:
    """The command that opens the MLflow UI on ``tracking_uri``, sized for one person: one
    web worker (MLflow's default is four, each a process of its own)."""
    return [
        "mlflow",
        "ui",
        "--backend-store-uri",
        tracking_uri,
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        "1",
    ]


def ui_environment() -> dict[str, str]:
    """Environment for :func:`ui_command`: no background job runner (it serves GenAI
    evaluation jobs, which bnsearch's runs never have)."""
    return {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


# Where each table of MLflow's SQLite store keeps an artifact path.
_ARTIFACT_COLUMNS = (
    ("runs", "artifact_uri"),
    ("model_versions", "source"),
    ("model_versions", "storage_location"),
    ("logged_models", "artifact_location"),
)


def relocate_artifacts(tracking_uri: str) -> int:
    """After a SQLite store's folder was moved or copied: point each experiment whose
    artifact folder is gone at ``artifacts/<study>`` beside the database, where bnsearch
    put it (MLflow stores artifact locations as absolute paths). Returns how many
    experiments moved; other stores and experiments are left as they are."""
    import sqlite3
    import urllib.parse

    db_path = _sqlite_path(tracking_uri)
    if db_path is None or not db_path.exists():
        return 0
    here = (db_path.parent / "artifacts").resolve()
    moved = 0
    with contextlib.closing(sqlite3.connect(db_path)) as db, db:
        tables = {row[0] for row in db.execute("select name from sqlite_master")}
        if "experiments" not in tables:
            return 0
        for experiment_id, location in db.execute(
            "select experiment_id, artifact_location from experiments"
        ).fetchall():
            if not (location or "").startswith("file://"):
                continue
            old = Path(urllib.parse.unquote(urllib.parse.urlparse(location).path))
            new = here / old.name
            if old.exists() or old.parent.name != "artifacts" or not new.is_dir():
                continue
            target = new.as_uri()
            db.execute(
                "update experiments set artifact_location = ? where experiment_id = ?",
                (target, experiment_id),
            )
            for table, column in _ARTIFACT_COLUMNS:
                if table in tables:
                    db.execute(
                        f"update {table} set {column} = ? || substr({column}, ?) "  # noqa: S608
                        f"where substr({column}, 1, ?) = ?",
                        (target, len(location) + 1, len(location), location),
                    )
            moved += 1
    return moved


def existing_experiment_id(tracking_uri: str, name: str) -> str | None:
    """The id of the experiment ``name`` if the store has one (creates nothing)."""
    from mlflow.tracking import MlflowClient

    db_path = _sqlite_path(tracking_uri)
    if db_path is not None and not db_path.exists():
        return None
    found = MlflowClient(tracking_uri=tracking_uri).get_experiment_by_name(name)
    return None if found is None else str(found.experiment_id)


def runs_url(experiment_id: str, host: str = "127.0.0.1", port: int = 5000) -> str:
    """The UI's runs table of one experiment. ``workflowType=machine_learning`` opens it as
    a model-training experiment even in a browser that has never chosen, where MLflow 3
    would show its GenAI overview (traces, no runs)."""
    return f"http://{host}:{port}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"


def _sqlite_path(uri: str) -> Path | None:
    if uri.startswith("sqlite:///"):
        return Path(uri.removeprefix("sqlite:///"))
    return None


class MlflowTracker:
    """Writes a study's runs to one MLflow experiment named after the study."""

    def __init__(
        self,
        tracking_uri: str,
        experiment_name: str,
        artifact_root: Path | None = None,
    ) -> None:
        self.tracking_uri = tracking_uri
        self.experiment_name = experiment_name
        self.artifact_root = artifact_root
        self._client: Any = None
        self._parent_run_name = ""
        self._resolved_uri = tracking_uri
        self.experiment_id: str | None = None
        self.parent_run_id: str | None = None
        #: Where the tracker says that MLflow went away or came back.
        self.notify: Callable[[str], None] = _print_notice
        self.pending = 0  # trial runs not (fully) written, for sync to back-fill
        self._outage: str | None = None
        self._offline_until = 0.0
        # Runs created while their parameters could not be written (MLflow went away
        # between the two calls): the parameters go with the outcome.
        self._without_params: set[str] = set()

    @property
    def client(self) -> Any:
        if self._client is None:
            self.connect()
        return self._client

    def connect(self) -> None:
        """Open the store and create the study's experiment if needed."""
        import logging

        from mlflow.tracking import MlflowClient

        # MLflow logs every Alembic migration of a new SQLite store at INFO.
        logging.getLogger("alembic").setLevel(logging.WARNING)
        logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)
        for name, value in _HTTP_DEFAULTS.items():
            os.environ.setdefault(name, value)
        # MLflow prints a link per run it ends on an HTTP store: with the URL's password in
        # it, and once per trial. bnsearch prints its own (redacted) way to the UI.
        os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
        db_path = _sqlite_path(self.tracking_uri)
        if db_path is not None:
            try:
                db_path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise StoreError(
                    f"cannot create the MLflow store folder {db_path.parent} ({error.strerror}); "
                    "pick a writable place with --tracking-uri."
                ) from error
        try:
            probe(self.tracking_uri)
            relocate_artifacts(self.tracking_uri)
            # MLflow caches one store per URI string for the process: a relative SQLite path
            # would keep writing to the first working folder's database.
            absolute = f"sqlite:///{db_path.resolve()}" if db_path is not None else None
            self._resolved_uri = absolute or self.tracking_uri
            client = MlflowClient(tracking_uri=self._resolved_uri)
            experiment_id = self._open_experiment(client, db_path)
        except Exception as error:  # noqa: BLE001 - any store failure means the same to a user
            message = str(error).splitlines()[0] if str(error) else type(error).__name__
            message = redact_text(message, [self.tracking_uri])
            raise StoreError(
                f"cannot use the MLflow tracking store {redact_url(self.tracking_uri)} "
                f"({message}); check --tracking-uri or MLFLOW_TRACKING_URI."
            ) from None
        self._client = client
        self.experiment_id = experiment_id

    def _open_experiment(self, client: Any, db_path: Path | None) -> str:
        """The study's experiment id, creating the experiment (beside a SQLite store, its
        artifacts under ``artifacts/<study>``) if no worker has yet."""
        experiment = client.get_experiment_by_name(self.experiment_name)
        if experiment is not None:
            for key, value in _EXPERIMENT_TAGS.items():
                if experiment.tags.get(key) != value:  # made by an earlier version
                    client.set_experiment_tag(experiment.experiment_id, key, value)
            return str(experiment.experiment_id)
        root = self.artifact_root
        if root is None and db_path is not None:
            root = db_path.parent / "artifacts"
        location = None if root is None else (root.resolve() / self.experiment_name).as_uri()
        try:
            return str(
                client.create_experiment(
                    self.experiment_name, artifact_location=location, tags=_EXPERIMENT_TAGS
                )
            )
        except Exception:
            # Another worker created it first: use theirs.
            experiment = client.get_experiment_by_name(self.experiment_name)
            if experiment is None:
                raise
            return str(experiment.experiment_id)

    def _experiment(self) -> str:
        """The experiment's id, connecting first if need be."""
        if self._client is None:
            self.connect()
        return str(self.experiment_id)

    # --- calls that survive an outage ----------------------------------------------------

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """``client.<method>(...)`` tried again after each of :data:`RETRY_DELAYS_S`; a
        TrackingUnavailable when every try failed (or MLflow went away moments ago)."""
        if self._outage is not None and time.monotonic() < self._offline_until:
            raise TrackingUnavailable(self._outage)
        error: Exception | None = None
        # Once MLflow is known to be away, one try tells whether it is back.
        delays = (0.0,) if self._outage is not None else (0.0, *RETRY_DELAYS_S)
        for delay in delays:
            time.sleep(delay)
            try:
                result = getattr(self.client, method)(*args, **kwargs)
            except Exception as failure:  # noqa: BLE001 - sorted below
                if _is_permanent(failure):
                    raise
                error = failure
                continue
            if self._outage is not None:
                self._outage = None
                self.notify("bnsearch: MLflow answers again; logging goes on.")
            return result
        text = str(error).splitlines()[0] if str(error) else type(error).__name__
        text = redact_text(text, [self.tracking_uri])
        first = self._outage is None
        self._outage = (
            f"MLflow tracking store {redact_url(self.tracking_uri)} unreachable ({text[:300]})"
        )
        self._offline_until = time.monotonic() + OFFLINE_S
        if first:
            self.notify(
                f"bnsearch: {self._outage}; training goes on and the study's store keeps "
                "every result; the missing runs are written when MLflow is back (the next "
                "study run, or python -m bnsearch sync)."
            )
        raise TrackingUnavailable(self._outage)

    def _best_effort(self, method: str, *args: Any, **kwargs: Any) -> bool:
        """``_call`` for a trial's run: False (and counted as pending) when MLflow is away."""
        try:
            self._call(method, *args, **kwargs)
        except TrackingUnavailable:
            return False
        return True

    # --- the parent run ------------------------------------------------------------------

    def start_study_run(
        self,
        run_name: str,
        params: Mapping[str, Any],
        tags: Mapping[str, str],
        dataset: Dataset | None = None,
    ) -> str:
        from mlflow.entities import Param, RunTag

        run = self._call(
            "create_run",
            self._experiment(),
            run_name=run_name,
            tags={"bnsearch.kind": "study", **_process_tags(), **tags},
        )
        self.parent_run_id = run.info.run_id
        self._parent_run_name = run_name
        self._call(
            "log_batch",
            self.parent_run_id,
            params=[Param(k, _param_value(v)) for k, v in params.items()],
            tags=[RunTag("bnsearch.started", time.strftime("%Y-%m-%dT%H:%M:%S"))],
        )
        if dataset is not None:
            self.log_dataset(self.parent_run_id, dataset)
        return self.parent_run_id

    def end_study_run(
        self,
        status: str = "FINISHED",
        metrics: Mapping[str, float] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        from mlflow.entities import Metric, RunTag

        if self.parent_run_id is None:
            return
        now = int(time.time() * 1000)
        finite = {k: v for k, v in (metrics or {}).items() if v is not None and math.isfinite(v)}
        self._call(
            "log_batch",
            self.parent_run_id,
            metrics=[Metric(k, float(v), now, 0) for k, v in finite.items()],
            tags=[RunTag(k, str(v)) for k, v in (tags or {}).items()],
        )
        self._call("set_terminated", self.parent_run_id, status=status)
        self.parent_run_id = None

    @contextlib.contextmanager
    def study_run_guard(self) -> Iterator[None]:
        """End the parent run as KILLED on Ctrl-C and FAILED on any error, then re-raise
        (the first error: MLflow being away as well does not hide it)."""
        try:
            yield
        except KeyboardInterrupt:
            with contextlib.suppress(TrackingUnavailable):
                self.end_study_run(status="KILLED", tags={"bnsearch.interrupted": "true"})
            raise
        except BaseException:
            with contextlib.suppress(TrackingUnavailable):
                self.end_study_run(status="FAILED")
            raise

    def end_study_run_with_verdict(
        self,
        verdict: Verdict,
        note: str,
        label: str,
        metrics: Mapping[str, float] | None = None,
        status: str = "FINISHED",
    ) -> None:
        """End the parent run with the verdict's metrics and tags (``study`` and ``report``
        both end their runs here, so the two record a verdict the same way). What MLflow
        shows first carries the answer: the run's description (its note) is the verdict in
        a few lines, its name ends with the outcome, and it is marked the latest parent run
        of the study (``bnsearch.latest``; earlier ones lose the mark, keep the rest).
        ``note`` and ``label`` are written by :mod:`bnsearch.report` (tracking stores what
        presentation wrote; it does not render)."""
        values = {**(metrics or {}), "verdict.n_blocks": float(verdict.n_blocks)}
        tags = {
            "bnsearch.verdict": verdict.outcome,
            "bnsearch.verdict_text": verdict.statement,
            "bnsearch.verdict_rule": verdict.until,
            "mlflow.note.content": note,
            "bnsearch.latest": "true",
        }
        self._name_and_mark_latest(label)
        if verdict.primary is not None:
            for end in ("cs_low", "cs_high"):  # infinite (unbounded) ends are left out
                if math.isfinite(getattr(verdict.primary, end)):
                    values[f"verdict.{end}"] = getattr(verdict.primary, end)
            values["verdict.median_difference"] = verdict.primary.median
            values["verdict.mean_difference"] = verdict.primary.mean
            values["verdict.ci_low"] = verdict.primary.ci_low
            values["verdict.ci_high"] = verdict.primary.ci_high
            values["verdict.p_holm"] = verdict.primary.p_holm
        for activation, sub in verdict.by_activation.items():
            tags[f"bnsearch.verdict.{activation}"] = sub.outcome
            tags[f"bnsearch.verdict_text.{activation}"] = sub.statement
            if sub.primary is not None:
                values[f"verdict.{activation}.median_difference"] = sub.primary.median
                values[f"verdict.{activation}.ci_low"] = sub.primary.ci_low
                values[f"verdict.{activation}.ci_high"] = sub.primary.ci_high
        self.end_study_run(status=status, metrics=values, tags=tags)

    def _name_and_mark_latest(self, label: str) -> None:
        """The parent run's name ends with ``label``; earlier parent runs lose the mark."""
        if self.parent_run_id is None:
            return
        name = f"{self._parent_run_name} · {label}".strip(" ·")
        self._call("update_run", self.parent_run_id, name=name)
        for earlier in self._search("tags.`bnsearch.latest` = 'true'"):
            if earlier.info.run_id != self.parent_run_id:
                self._call("set_tag", earlier.info.run_id, "bnsearch.latest", "false")

    def log_dataset(self, run_id: str, dataset: Dataset) -> None:
        import mlflow.data
        from mlflow.entities import DatasetInput, InputTag

        mlflow_dataset = mlflow.data.from_numpy(
            dataset.x, targets=dataset.y, name=dataset.name, digest=dataset.fingerprint
        )
        inputs = [
            DatasetInput(
                mlflow_dataset._to_mlflow_entity(),
                tags=[InputTag("mlflow.data.context", "training")],
            )
        ]
        for attempt in range(3):
            try:
                self._call("log_inputs", run_id, datasets=inputs)
                return
            except TrackingUnavailable:
                raise
            except Exception:
                # Workers starting together race to insert the same dataset row (a refused
                # duplicate); once one has, the others' next try links to it.
                if attempt == 2:
                    raise
                time.sleep(0.5 * (attempt + 1))

    def log_artifact(self, local_path: Path, run_id: str | None = None) -> None:
        self._call("log_artifact", run_id or self.parent_run_id, str(local_path))

    # --- child runs, one per trial (best effort: the backend's store has the truth) ------

    def start_trial(
        self, spec: TrialSpec, extra_tags: Mapping[str, str] | None = None
    ) -> str | None:
        """Create the trial's run with its parameters; None when MLflow is away (the trial
        trains anyway and :meth:`finish_trial` or :meth:`sync` writes the run later)."""
        try:
            run = self._call(
                "create_run",
                self._experiment(),
                run_name=_trial_run_name(spec),
                tags=_trial_tags(spec, self.parent_run_id, "RUNNING", extra_tags),
            )
        except TrackingUnavailable:
            return None
        run_id = run.info.run_id
        if not self._best_effort("log_batch", run_id, params=_trial_params(spec)):
            self._without_params.add(run_id)
        return run_id

    def log_trial_params(self, run_id: str | None, params: Mapping[str, Any]) -> None:
        """Params a trial gets beyond its configuration (Keras Tuner's Hyperband keys)."""
        from mlflow.entities import Param

        if run_id is not None:
            entries = [Param(k, _param_value(v)) for k, v in params.items()]
            self._best_effort("log_batch", run_id, params=entries)

    def log_epoch(self, run_id: str | None, step: int, metrics: Mapping[str, float]) -> bool:
        """One epoch's metrics of a trial in progress (finite values only); False when they
        could not be written (:meth:`finish_trial` then fills the gaps)."""
        from mlflow.entities import Metric

        if run_id is None:
            return False
        now = int(time.time() * 1000)
        finite = [Metric(k, v, now, step) for k, v in metrics.items() if math.isfinite(v)]
        return self._best_effort("log_batch", run_id, metrics=finite)

    def finish_trial(
        self,
        run_id: str | None,
        result: TrialResult,
        history_logged: HistoryLogged = "none",
        extra_tags: Mapping[str, str] | None = None,
    ) -> bool:
        """Write the trial's outcome and end its run (FINISHED, KILLED if pruned, or
        FAILED): its per-epoch metrics (as far as ``history_logged`` says they are not
        there yet), final and best values and state. Without a run (MLflow was away at the
        trial's start) the run is created now. False, and one more pending run for
        :meth:`sync`, when MLflow is away."""
        try:
            if run_id is None:
                run_id = self._create_finished_run(result, self.parent_run_id, extra_tags)
            else:
                if run_id in self._without_params:
                    self._call("log_batch", run_id, params=_trial_params(result.spec))
                    self._without_params.discard(run_id)
                self._write_outcome(run_id, result, history_logged)
        except TrackingUnavailable:
            self.pending += 1
            return False
        return True

    def kill_run(self, run_id: str | None, reason: str, status: str = "KILLED") -> None:
        """End a run that was interrupted or abandoned, keeping what it logged."""
        from mlflow.entities import RunTag

        if run_id is None:
            return
        tags = [RunTag("bnsearch.fail_reason", reason), RunTag("bnsearch.state", "FAILED")]
        if self._best_effort("log_batch", run_id, tags=tags):
            self._best_effort("set_terminated", run_id, status=status)

    def _create_finished_run(
        self, result: TrialResult, parent_run_id: str | None, extra_tags: Mapping[str, str] | None
    ) -> str:
        spec = result.spec
        tags = _trial_tags(spec, parent_run_id, "RUNNING", extra_tags)
        run = self._call(
            "create_run", self._experiment(), run_name=_trial_run_name(spec), tags=tags
        )
        run_id = run.info.run_id
        self._call("log_batch", run_id, params=_trial_params(spec))
        self._write_outcome(run_id, result, history_logged="none")
        return run_id

    def _write_outcome(
        self, run_id: str, result: TrialResult, history_logged: HistoryLogged
    ) -> None:
        from mlflow.entities import Metric, RunTag

        now = int(time.time() * 1000)
        metrics = [
            Metric(name, float(value), now, step)
            for name, step, value in self._missing_steps(run_id, result, history_logged)
        ]
        for name in ("val_loss", "val_accuracy"):
            final, best = result.final(name), result.best(name)
            if final is not None and math.isfinite(final):
                metrics.append(Metric(f"final_{name}", final, now, 0))
            if best is not None:
                metrics.append(Metric(f"best_{name}", best, now, 0))
        metrics.append(Metric("epochs_trained", float(result.epochs_trained), now, 0))
        metrics.append(Metric("wall_time_s", result.wall_time_s, now, 0))
        tags = [
            RunTag("bnsearch.state", result.state.value),
            RunTag("bnsearch.engine", result.engine),
        ]
        if result.fail_reason:
            tags.append(RunTag("bnsearch.fail_reason", result.fail_reason[:5000]))
        for start in range(0, len(metrics), 900):
            chunk = metrics[start : start + 900]
            self._call("log_batch", run_id, metrics=chunk, tags=tags if start == 0 else [])
        self._call("set_terminated", run_id, status=_STATUS[result.state])

    def _missing_steps(
        self, run_id: str, result: TrialResult, history_logged: HistoryLogged
    ) -> list[tuple[str, int, float]]:
        """The (metric, step, value) entries of the history the run lacks: all of them for a
        run that logged none, none for one that logged all, else those MLflow does not hold
        (an outage cut some)."""
        wanted = [
            (name, step, value)
            for name in METRICS
            for step, value in enumerate(result.history.get(name, []))
            if math.isfinite(value)
        ]
        if history_logged != "some":
            return wanted if history_logged == "none" else []
        held = {
            (name, metric.step)
            for name in METRICS
            for metric in self._call("get_metric_history", run_id, name)
        }
        return [entry for entry in wanted if entry[:2] not in held]

    # --- catching up with the backend's store ----------------------------------------------

    def sync(self, read_store: Callable[[], StoredTrials]) -> SyncReport:
        """Make MLflow agree with the study's store: each stored result gets exactly one
        ended run of its state, with its full history (created, or completed from a run
        left RUNNING); a RUNNING trial run whose trial is no longer in flight ends FAILED;
        a study run of a process of this machine that is gone ends FAILED.

        ``read_store`` is called after MLflow's runs are read, so a trial another worker
        claims meanwhile is seen in flight rather than taken for abandoned."""
        report = SyncReport()
        by_number: dict[str, list[Any]] = {}
        for run in self._search("tags.`bnsearch.kind` = 'trial'"):
            by_number.setdefault(run.data.tags.get("bnsearch.trial_number", ""), []).append(run)
        store = read_store()
        written: set[str] = set()
        for result in store.results:
            own = by_number.get(str(result.spec.number), [])
            if any(run.info.status == _STATUS[result.state] for run in own):
                continue
            open_runs = [run for run in own if run.info.status == "RUNNING"]
            if open_runs:
                run = open_runs[0]
                run_id = run.info.run_id
                wanted = _trial_params(result.spec)
                if any(param.key not in run.data.params for param in wanted):
                    # Created just before an outage cut its parameters off; logging the
                    # same values again is allowed, so all of them go.
                    self._call("log_batch", run_id, params=wanted)
                self._write_outcome(run_id, result, history_logged="some")
                written.add(run_id)
                report.completed += 1
            else:
                parent = store.parents.get(result.spec.number) or self.parent_run_id
                self._create_finished_run(result, parent, {"bnsearch.backfilled": "true"})
                report.created += 1
        in_flight = {str(number) for number in store.running}
        for number, own in by_number.items():
            if number in in_flight:
                continue
            for run in own:
                if run.info.status == "RUNNING" and run.info.run_id not in written:
                    self._end_abandoned(run.info.run_id)
                    report.closed += 1
        report.closed += self._close_dead_study_runs()
        self.pending = 0
        return report

    def _end_abandoned(self, run_id: str) -> None:
        from mlflow.entities import RunTag

        reason = "abandoned: its process ended before the trial did"
        tags = [RunTag("bnsearch.fail_reason", reason), RunTag("bnsearch.state", "FAILED")]
        self._call("log_batch", run_id, tags=tags)
        self._call("set_terminated", run_id, status="FAILED")

    def _close_dead_study_runs(self) -> int:
        """End the RUNNING study runs of processes of this machine that no longer exist (a
        run killed, or MLflow away at its end); other machines' runs are left to their
        own next run."""
        host = socket.gethostname()
        closed = 0
        for run in self._search("tags.`bnsearch.kind` = 'study'"):
            tags = run.data.tags
            if run.info.status != "RUNNING" or tags.get("bnsearch.host") != host:
                continue
            if run.info.run_id == self.parent_run_id or _alive(tags.get("bnsearch.pid", "")):
                continue
            self._end_abandoned(run.info.run_id)
            closed += 1
        return closed

    def log_keras_model(
        self, run_id: str, model: Any, rows: Any, register_as: str | None = None
    ) -> str:
        """Log ``model`` to ``run_id`` as an MLflow model (Keras flavor, loadable with
        ``mlflow.pyfunc.load_model``) with the first ``INPUT_EXAMPLE_ROWS`` of ``rows`` as
        its input example and their predictions as its signature's output, registered as
        ``register_as`` when given; the model's URI."""
        import tempfile

        import mlflow
        from mlflow.models import infer_signature

        input_example = rows[:INPUT_EXAMPLE_ROWS].astype("float32")
        signature = infer_signature(input_example, model.predict(input_example, verbose=0))
        self._experiment()  # connected: the URI below is resolved
        mlflow.set_tracking_uri(self._resolved_uri)
        # mlflow.keras.log_model writes the input example before it creates the model's
        # folder (MLflow 3.17); save_model into a folder that exists, then log it.
        with tempfile.TemporaryDirectory(prefix="bnsearch-model-") as folder:
            path = Path(folder) / "model"
            path.mkdir()
            mlflow.keras.save_model(
                model, str(path), signature=signature, input_example=input_example
            )
            self._call("log_artifacts", run_id, str(path), "model")
        uri = f"runs:/{run_id}/model"
        if register_as is None:
            return uri
        version = mlflow.register_model(uri, register_as)
        return f"models:/{register_as}/{version.version}"

    def trial_run_id(self, number: int) -> str | None:
        """The run of trial ``number`` that holds its outcome (the latest, if several)."""
        query = f"tags.`bnsearch.kind` = 'trial' and tags.`bnsearch.trial_number` = '{number}'"
        runs = [r for r in self._search(query) if r.info.status != "RUNNING"]
        return max(runs, key=lambda r: r.info.start_time).info.run_id if runs else None

    def _search(self, query: str) -> list[Any]:
        """Every run of the experiment matching ``query`` (all pages)."""
        runs: list[Any] = []
        token = None
        while True:
            page = self._call(
                "search_runs", [self._experiment()], query, max_results=1000, page_token=token
            )
            runs.extend(page)
            token = page.token
            if not token:
                return runs

    def fail_abandoned_runs(
        self, trial_numbers: Iterable[int], parent_run_ids: Iterable[str], reason: str
    ) -> None:
        """End the runs of trials whose process died as FAILED with ``reason``, then each
        parent run among theirs (and ``parent_run_ids``) that has no running child left."""
        # A process can die between creating a trial's run and recording its id on the
        # trial: the run's own trial-number tag (set when it was created) finds it then.
        live = {
            run.data.tags.get("bnsearch.trial_number"): run
            for run in self._search(
                "tags.`bnsearch.kind` = 'trial' and attributes.status = 'RUNNING'"
            )
        }
        parents = set(parent_run_ids)
        for number in trial_numbers:
            run = live.get(str(number))
            if run is not None:
                self.kill_run(run.info.run_id, reason, status="FAILED")
                parents.add(run.data.tags.get("mlflow.parentRunId", ""))
        parents.discard("")
        for parent in parents:
            children = self._search(
                f"tags.`mlflow.parentRunId` = '{parent}' and attributes.status = 'RUNNING'"
            )
            if not children and self._call("get_run", parent).info.status == "RUNNING":
                self._call("set_tag", parent, "bnsearch.fail_reason", reason)
                self._call("set_terminated", parent, status="FAILED")


def _trial_run_name(spec: TrialSpec) -> str:
    """``trial-NNNN-<placement>`` for search trials, ``confirm-NNNN-<placement>`` for the
    confirmation round: the UI's name filter and sort keep the two apart."""
    prefix = "trial" if spec.phase == "search" else spec.phase
    return f"{prefix}-{spec.number:04d}-{spec.config.placement}"


def _trial_tags(
    spec: TrialSpec, parent_run_id: str | None, state: str, extra: Mapping[str, str] | None
) -> dict[str, str]:
    return {
        "mlflow.parentRunId": parent_run_id or "",
        "bnsearch.kind": "trial",
        "bnsearch.trial_number": str(spec.number),
        "bnsearch.seed": str(spec.seed),
        "bnsearch.state": state,
        "placement": spec.config.placement,
        **({"bnsearch.block": str(spec.block)} if spec.block is not None else {}),
        **(extra or {}),
    }


def _trial_params(spec: TrialSpec) -> list[Any]:
    from mlflow.entities import Param

    params = {**spec.config.as_params(), "seed": spec.seed}
    return [Param(k, _param_value(v)) for k, v in params.items()]


def _process_tags() -> dict[str, str]:
    """Who runs a study run: :meth:`MlflowTracker.sync` ends it once that process is gone."""
    return {"bnsearch.host": socket.gethostname(), "bnsearch.pid": str(os.getpid())}


def _alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def _print_notice(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _param_value(value: Any) -> str:
    if isinstance(value, float):
        return repr(value)
    return str(value)
