"""The connection to MLflow: the client, the study's experiment, and the one retry policy.

The backend's store holds every result; MLflow is its view. So every MLflow call goes
through :meth:`Connection.call`: tried again after each delay of
:data:`bnsearch._reachable.MLFLOW_RETRY`, and when MLflow stays away the connection says so
once and fails further calls at once for ``offline_s`` seconds (the outage breaker), so a
study trains on; :meth:`MlflowTracker.sync` writes what MLflow missed later.

A full disk under the store is no outage: it is not retried and does not clear by itself,
so **the study stops at the end of the batch in flight**. The disk under MLflow is most
often the disk under the Optuna storage and the artifacts too, so riding on would fail in a
worse place, and nothing trained is lost: each result is in the store before MLflow is told.
The first call that meets it records :attr:`Connection.full`; every later call fails at once.
"""

from __future__ import annotations

import functools
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bnsearch._reachable import MLFLOW_RETRY, opening_alone, probe
from bnsearch._redact import redact_text, redact_url
from bnsearch.errors import StoreError, StoreFullError, first_line, full_disk, full_disk_message
from bnsearch.tracking._local_store import relocate_artifacts, sqlite_path

if TYPE_CHECKING:
    import logging

    from mlflow.entities import Run
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
    """The disk under the MLflow store is full (or read-only); see the module docstring."""


def existing_experiment_id(tracking_uri: str, name: str) -> str | None:
    """The id of the experiment ``name`` if the store has one (creates nothing)."""
    from mlflow.tracking import MlflowClient

    db_path = sqlite_path(tracking_uri)
    if db_path is not None and not db_path.exists():
        return None
    found = MlflowClient(tracking_uri=tracking_uri).get_experiment_by_name(name)
    return None if found is None else str(found.experiment_id)


class Connection:
    """The client of one study's experiment, and calls to it that survive an outage."""

    def __init__(
        self, tracking_uri: str, experiment_name: str, artifact_root: Path | None = None
    ) -> None:
        self.tracking_uri = tracking_uri
        self.experiment_name = experiment_name
        self.artifact_root = artifact_root
        #: The URI the client was opened on (a SQLite path made absolute by :meth:`connect`).
        self.resolved_uri = tracking_uri
        self.experiment_id: str | None = None
        #: Where the connection says that MLflow went away or came back.
        self.notify: Callable[[str], None] = functools.partial(print, file=sys.stderr, flush=True)
        self._client: Any = None
        self._outage: str | None = None
        self._offline_until = 0.0
        #: The full disk under the store, once a call met it (every later call raises it).
        self.full: TrackingFull | None = None

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
        store_log = logging.getLogger("mlflow.store.db.utils")
        store_log.setLevel(logging.WARNING)
        # MLflow logs a traceback per failed write; a full disk is said once, by bnsearch.
        if not any(isinstance(f, _FullDiskRecords) for f in store_log.filters):
            store_log.addFilter(_FullDiskRecords())
        for name, value in _HTTP_DEFAULTS.items():
            os.environ.setdefault(name, value)
        # MLflow prints a link per run it ends on an HTTP store: with the URL's password in
        # it, and once per trial. bnsearch prints its own (redacted) way to the UI.
        os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
        db_path = sqlite_path(self.tracking_uri)
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
            with opening_alone(self.tracking_uri):
                relocate_artifacts(self.tracking_uri)
                # MLflow caches one store per URI string for the process: a relative SQLite
                # path would keep writing to the first working folder's database.
                absolute = f"sqlite:///{db_path.resolve()}" if db_path is not None else None
                self.resolved_uri = absolute or self.tracking_uri
                client = MlflowClient(tracking_uri=self.resolved_uri)
                experiment_id = self._open_experiment(client, db_path)
        except Exception as error:  # noqa: BLE001 - any store failure means the same to a user
            if (full := self.full_disk_fault(error)) is not None:
                raise full from None
            message = first_line(error, type(error).__name__)
            message = redact_text(message, [self.tracking_uri])
            raise StoreError(
                f"cannot use the MLflow tracking store {redact_url(self.tracking_uri)} "
                f"({message}); check --tracking-uri or MLFLOW_TRACKING_URI."
            ) from None
        self._client = client
        self.experiment_id = experiment_id

    def _open_experiment(self, client: MlflowClient, db_path: Path | None) -> str:
        """The study's experiment id, creating it (artifacts beside a SQLite store, under
        ``artifacts/<study>``) if no worker has yet."""
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

    def experiment(self) -> str:
        """The experiment's id, connecting first if need be."""
        if self._client is None:
            self.connect()
        return str(self.experiment_id)

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """``client.<method>(...)`` tried again after each delay of ``MLFLOW_RETRY``; a
        TrackingUnavailable when every try failed; a refusal (a 4xx) is raised at once."""
        return self._tries(method, args, kwargs, retry_refusals=False)

    def call_through_races(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """:meth:`call` for a write workers race to make (the same dataset row): a refusal
        is tried again too, since once one worker's write is in, the others' links to it."""
        return self._tries(method, args, kwargs, retry_refusals=True)

    def best_effort(self, method: str, *args: Any, **kwargs: Any) -> bool:
        """:meth:`call` for a trial's run: False when MLflow is away."""
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
            token = page.token
            if not token:
                return runs

    def _tries(
        self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any], retry_refusals: bool
    ) -> Any:
        if self.full is not None:
            raise TrackingFull(str(self.full)) from None
        if self._outage is not None and time.monotonic() < self._offline_until:
            raise TrackingUnavailable(self._outage)
        error: Exception | None = None
        # Once MLflow is known to be away, one try tells whether it is back.
        delays = (0.0,) if self._outage is not None else MLFLOW_RETRY.waits
        for delay in delays:
            time.sleep(delay)
            try:
                result = getattr(self.client, method)(*args, **kwargs)
            except Exception as failure:  # noqa: BLE001 - sorted below
                if (full := self.full_disk_fault(failure)) is not None:
                    self.full = full
                    raise full from None
                if _is_permanent(failure) and not retry_refusals:
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

    def full_disk_fault(self, error: Exception) -> TrackingFull | None:
        """The one-line fault when ``error`` says the disk under the store is full."""
        store = f"the MLflow tracking store {redact_url(self.tracking_uri)}"
        where = sqlite_path(self.tracking_uri) or self.tracking_uri
        message = full_disk_message(error, store, where)
        return None if message is None else TrackingFull(message)

    def _went_away(self, error: Exception | None) -> TrackingUnavailable:
        """Open the breaker after a call gave up (saying so once per outage)."""
        text = first_line(error, type(error).__name__)
        text = redact_text(text, [self.tracking_uri])
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


class _FullDiskRecords:
    """A logging filter that drops MLflow's records of a full disk (bnsearch says it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if error is not None and full_disk(error):
            return False
        return full_disk(Exception(record.getMessage())) is None


def tags_equal(*conditions: tuple[str, str | int]) -> str:
    """An MLflow search filter: each ``(key, value)`` tag equal to its value."""
    return " and ".join(f"tags.`{key}` = '{value}'" for key, value in conditions)
