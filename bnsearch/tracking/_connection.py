"""The connection to MLflow: the client, the study's experiment, the one retry policy (MLflow
is a view of the store: ``sync`` writes what an outage missed; a full disk is not retried)."""

from __future__ import annotations

import functools
import math
import os
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bnsearch._reachable import MLFLOW_RETRY, make_store_folder, opening_alone, probe, sqlite_path
from bnsearch._redact import redact_text, redact_url
from bnsearch.errors import StoreError, StoreFullError, first_line, full_disk, full_disk_message
from bnsearch.tracking._local_store import relocate_artifacts

if TYPE_CHECKING:
    import logging

    from mlflow.entities import Metric, Run
    from mlflow.tracking import MlflowClient

# MLflow's own HTTP retries would wait minutes per call; bnsearch retries the call itself.
_HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
}

#: Experiment metadata MLflow's UI reads: a model-training experiment, not a GenAI one.
_EXPERIMENT_TAGS = {"mlflow.experimentKind": "custom_model_development"}


class TrackingUnavailable(StoreError):
    """MLflow did not answer a call after its retries (:meth:`MlflowTracker.sync` back-fills)."""


class TrackingFull(TrackingUnavailable, StoreFullError):
    """The disk under the MLflow store is full (or read-only): the study stops after its batch."""


def existing_experiment_id(tracking_uri: str, name: str) -> str | None:
    from mlflow.tracking import MlflowClient

    db_path = sqlite_path(tracking_uri)
    if db_path is not None and not db_path.exists():
        return None
    found = MlflowClient(tracking_uri=tracking_uri).get_experiment_by_name(name)
    return None if found is None else str(found.experiment_id)


class Connection:
    """The client of one study's experiment, and calls to it that survive an outage."""

    def __init__(self, tracking_uri: str, experiment_name: str) -> None:
        self.tracking_uri = tracking_uri
        self.experiment_name = experiment_name
        self.resolved_uri = tracking_uri  # a SQLite path made absolute by connect()
        self.experiment_id: str | None = None
        #: Where the connection says that MLflow went away or came back.
        self.notify: Callable[[str], None] = functools.partial(print, file=sys.stderr, flush=True)
        self._client: Any = None
        self._outage: str | None = None
        self._offline_until = 0.0
        self.full: TrackingFull | None = None  # once met, every later call raises it
        self.parent_run_id: str | None = None  # or the run a worker process writes under
        self._parent_run_name = ""
        self.pending = 0  # trial runs not (fully) written, for sync to back-fill
        # Runs created while MLflow went away before their parameters: they go with the outcome.
        self._without_params: set[str] = set()

    @property
    def client(self) -> Any:
        if self._client is None:
            self.connect()
        return self._client

    def connect(self) -> None:
        import logging

        from mlflow.tracking import MlflowClient

        # MLflow logs every Alembic migration of a new SQLite store at INFO, and a traceback
        # per failed write: a full disk is said once, by bnsearch.
        for name in ("alembic", "mlflow.store.db.utils"):
            logging.getLogger(name).setLevel(logging.WARNING)
        logging.getLogger("mlflow.store.db.utils").addFilter(_not_full_disk)
        for name, value in _HTTP_DEFAULTS.items():
            os.environ.setdefault(name, value)
        # MLflow prints a link per run it ends on an HTTP store: with the URL's password in
        # it, and once per trial. bnsearch prints its own (redacted) way to the UI.
        os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
        db_path = make_store_folder(self.tracking_uri, "MLflow store", "--tracking-uri")
        if db_path is not None:
            # MLflow caches one store per URI string for the process: a relative SQLite
            # path would keep writing to the first working folder's database. The URI's
            # query (SQLAlchemy's connection arguments, e.g. ``?timeout=30``) is kept.
            query = self.tracking_uri.partition("?")[2]
            self.resolved_uri = f"sqlite:///{db_path.resolve()}" + (f"?{query}" if query else "")
        try:
            probe(self.tracking_uri)
            with opening_alone(self.tracking_uri):
                relocate_artifacts(self.tracking_uri)
                client = MlflowClient(tracking_uri=self.resolved_uri)
                self.experiment_id = self._open_experiment(client, db_path)
        except Exception as error:  # noqa: BLE001 - any store failure means the same to a user
            if (full := self.full_disk_fault(error)) is not None:
                raise full from None
            message = redact_text(first_line(error, type(error).__name__), [self.tracking_uri])
            raise StoreError(
                f"cannot use the MLflow tracking store {redact_url(self.tracking_uri)} "
                f"({message}); check --tracking-uri or MLFLOW_TRACKING_URI."
            ) from None
        self._client = client

    def _open_experiment(self, client: MlflowClient, db_path: Path | None) -> str:
        """The experiment's id, created if no worker has yet (artifacts beside a SQLite store)."""
        name = self.experiment_name
        experiment = client.get_experiment_by_name(name)
        if experiment is not None:
            for key, value in _EXPERIMENT_TAGS.items():
                if experiment.tags.get(key) != value:  # made by an earlier version
                    client.set_experiment_tag(experiment.experiment_id, key, value)
            return str(experiment.experiment_id)
        location = None
        if db_path is not None:
            location = ((db_path.parent / "artifacts").resolve() / name).as_uri()
        try:
            return str(
                client.create_experiment(name, artifact_location=location, tags=_EXPERIMENT_TAGS)
            )
        except Exception:
            # Another worker created it first: use theirs.
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                raise
            return str(experiment.experiment_id)

    def experiment(self) -> str:
        """The experiment's id, connecting first if need be."""
        if self._client is None:
            self.connect()
        return str(self.experiment_id)

    def call(self, method: str, *args: Any, races: bool = False, **kwargs: Any) -> Any:
        """``client.<method>(...)``, tried again after each delay of ``MLFLOW_RETRY``, else a
        TrackingUnavailable. A refusal (a 4xx) is raised at once, unless ``races``: a write
        workers race to make (the same dataset row), which the others' next try links to."""
        if self.full is not None:
            raise TrackingFull(str(self.full)) from None
        if self._outage is not None and time.monotonic() < self._offline_until:
            raise TrackingUnavailable(self._outage)
        error: Exception | None = None
        # Once MLflow is known to be away, one try tells whether it is back.
        delays = () if self._outage is not None else MLFLOW_RETRY.delays_s
        for delay in (0.0, *delays):
            time.sleep(delay)
            try:
                result = getattr(self.client, method)(*args, **kwargs)
            except Exception as failure:  # noqa: BLE001 - sorted below
                if (full := self.full_disk_fault(failure)) is not None:
                    self.full = full
                    raise full from None
                if _is_permanent(failure) and not races:
                    raise
                error = failure
                continue
            if self._outage is not None:
                self._outage = None
                self.notify("bnsearch: MLflow answers again; logging goes on.")
            return result
        if error is not None and _is_permanent(error):
            raise error  # refused on every try: MLflow answers, so this is no outage
        raise self._went_away(error)

    def best_effort(self, method: str, *args: Any, **kwargs: Any) -> bool:
        """:meth:`call`, False when MLflow is away."""
        try:
            self.call(method, *args, **kwargs)
        except TrackingUnavailable:
            return False
        return True

    def search(self, query: str) -> list[Run]:
        """Every run of the experiment matching ``query`` (all pages)."""
        runs: list[Run] = []
        token = None
        while True:
            page = self.call(
                "search_runs", [self.experiment()], query, max_results=1000, page_token=token
            )
            runs.extend(page)
            if not (token := page.token):
                return runs

    def log_metrics(self, run_id: str, metrics: list[Metric], **first: Any) -> None:
        """``log_batch`` 900 metrics a call (MLflow takes 1000 at most), ``first`` (params,
        tags) with the first call."""
        for start in range(0, len(metrics) or 1, 900):
            chunk = metrics[start : start + 900]
            self.call("log_batch", run_id, metrics=chunk, **(first if start == 0 else {}))

    def full_disk_fault(self, error: Exception) -> TrackingFull | None:
        """The one-line fault when ``error`` is a full disk under the store."""
        store = f"the MLflow tracking store {redact_url(self.tracking_uri)}"
        where = sqlite_path(self.tracking_uri) or self.tracking_uri
        message = full_disk_message(error, store, where)
        return None if message is None else TrackingFull(message)

    def _went_away(self, error: Exception | None) -> TrackingUnavailable:
        """Open the breaker after a call gave up (saying so once per outage)."""
        text = redact_text(first_line(error, type(error).__name__), [self.tracking_uri])
        first = self._outage is None
        self._outage = (
            f"MLflow tracking store {redact_url(self.tracking_uri)} unreachable ({text[:300]})"
        )
        self._offline_until = time.monotonic() + MLFLOW_RETRY.offline_s
        if first:
            self.notify(
                f"bnsearch: {self._outage}; training goes on and the study's store keeps "
                "every result; the missing runs are written when MLflow is back (the next "
                "study run, or python -m bnsearch sync)."
            )
        return TrackingUnavailable(self._outage)


def _is_permanent(error: Exception) -> bool:
    """A refusal that another try cannot change (a bad request, a missing run)."""
    from mlflow.exceptions import MlflowException

    if not isinstance(error, MlflowException):
        return False
    status = error.get_http_status_code()
    return 400 <= status < 500 and status != 429


def _not_full_disk(record: logging.LogRecord) -> bool:
    """A logging filter: MLflow's records of a full disk go (bnsearch says it)."""
    error = record.exc_info[1] if record.exc_info else None
    return not (error and full_disk(error)) and full_disk(Exception(record.getMessage())) is None


def tags_equal(*conditions: tuple[str, str | int]) -> str:
    """An MLflow search filter: each ``(key, value)`` tag equal to its value."""
    return " and ".join(f"tags.`{key}` = '{value}'" for key, value in conditions)


def as_metrics(rows: Iterable[tuple[str, float | None, int]], **link: str) -> list[Metric]:
    """MLflow metrics of ``(name, value, step)`` rows, stamped now, less what is not finite."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    return [
        Metric(name, float(value), now, step, **link)
        for name, value, step in rows
        if value is not None and math.isfinite(value)
    ]
