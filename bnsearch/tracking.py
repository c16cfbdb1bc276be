"""MLflow tracking: one experiment per study, a parent run per invocation, a child run per trial.

Everything goes through ``MlflowClient`` with explicit run ids (children point at the parent
with the ``mlflow.parentRunId`` tag), never through thread-local active-run state, so several
trials can be open at once. This module knows TrialSpecs and TrialResults, nothing of Optuna
or Keras Tuner.

Default store: ``sqlite:///mlruns/mlflow.db`` with artifacts under ``mlruns/artifacts``
(MLflow no longer accepts a plain file store, so the experiment's artifact location is set
explicitly). ``MLFLOW_TRACKING_URI`` or ``--tracking-uri`` override it.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bnsearch.data import Dataset
from bnsearch.errors import StoreError
from bnsearch.redact import redact_text, redact_url
from bnsearch.results import METRICS, TrialResult, TrialSpec, TrialState

if TYPE_CHECKING:
    from bnsearch.analysis import Verdict
    from bnsearch.summary import PlacementSummary

__all__ = ["DEFAULT_STORE_DIR", "MlflowTracker", "default_tracking_uri", "ui_command"]

DEFAULT_STORE_DIR = Path("mlruns")

_STATUS = {
    TrialState.COMPLETE: "FINISHED",
    TrialState.PRUNED: "KILLED",
    TrialState.FAILED: "FAILED",
}


def default_tracking_uri(store_dir: Path = DEFAULT_STORE_DIR, _no_env: bool = False) -> str:
    """``$MLFLOW_TRACKING_URI``, else the SQLite file under ``store_dir``."""
    local = f"sqlite:///{store_dir / 'mlflow.db'}"
    return local if _no_env else os.environ.get("MLFLOW_TRACKING_URI") or local


def ui_command(tracking_uri: str, host: str = "127.0.0.1", port: int = 5000) -> list[str]:
    """The command that opens the MLflow UI on ``tracking_uri``."""
    return [
        "mlflow",
        "ui",
        "--backend-store-uri",
        tracking_uri,
        "--host",
        host,
        "--port",
        str(port),
    ]


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
        self.experiment_id: str | None = None
        self.parent_run_id: str | None = None

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
            # MLflow caches one store per URI string for the process: a relative SQLite path
            # would keep writing to the first working folder's database.
            absolute = f"sqlite:///{db_path.resolve()}" if db_path is not None else None
            client = MlflowClient(tracking_uri=absolute or self.tracking_uri)
            experiment = client.get_experiment_by_name(self.experiment_name)
            if experiment is None:
                root = self.artifact_root
                if root is None and db_path is not None:
                    root = db_path.parent / "artifacts"
                location = None
                if root is not None:
                    location = (root.resolve() / self.experiment_name).as_uri()
                try:
                    experiment_id = client.create_experiment(
                        self.experiment_name, artifact_location=location
                    )
                except Exception:
                    # Another worker created it first: use theirs.
                    experiment = client.get_experiment_by_name(self.experiment_name)
                    if experiment is None:
                        raise
                    experiment_id = experiment.experiment_id
            else:
                experiment_id = experiment.experiment_id
        except Exception as error:  # noqa: BLE001 - any store failure means the same to a user
            message = str(error).splitlines()[0] if str(error) else type(error).__name__
            message = redact_text(message, [self.tracking_uri])
            raise StoreError(
                f"cannot use the MLflow tracking store {redact_url(self.tracking_uri)} "
                f"({message}); check --tracking-uri or MLFLOW_TRACKING_URI."
            ) from None
        self._client = client
        self.experiment_id = experiment_id

    # --- the parent run ------------------------------------------------------------------

    def start_study_run(
        self,
        run_name: str,
        params: Mapping[str, Any],
        tags: Mapping[str, str],
        dataset: Dataset | None = None,
    ) -> str:
        from mlflow.entities import Param, RunTag

        run = self.client.create_run(
            self.experiment_id,
            run_name=run_name,
            tags={"bnsearch.kind": "study", **tags},
        )
        self.parent_run_id = run.info.run_id
        self.client.log_batch(
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
        self.client.log_batch(
            self.parent_run_id,
            metrics=[Metric(k, float(v), now, 0) for k, v in finite.items()],
            tags=[RunTag(k, str(v)) for k, v in (tags or {}).items()],
        )
        self.client.set_terminated(self.parent_run_id, status=status)
        self.parent_run_id = None

    @contextlib.contextmanager
    def study_run_guard(self) -> Iterator[None]:
        """End the parent run as KILLED on Ctrl-C and FAILED on any error, then re-raise."""
        try:
            yield
        except KeyboardInterrupt:
            self.end_study_run(status="KILLED", tags={"bnsearch.interrupted": "true"})
            raise
        except BaseException:
            self.end_study_run(status="FAILED")
            raise

    def end_study_run_with_verdict(
        self,
        verdict: Verdict,
        table: Sequence[PlacementSummary] = (),
        metrics: Mapping[str, float] | None = None,
        status: str = "FINISHED",
    ) -> None:
        """End the parent run with the verdict's metrics and tags (``study`` and ``report``
        both end their runs here, so the two record a verdict the same way)."""
        values = {**(metrics or {}), "verdict.n_blocks": float(verdict.n_blocks)}
        tags = {"bnsearch.verdict": verdict.outcome, "bnsearch.verdict_text": verdict.statement}
        if verdict.primary is not None:
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
        for row in table:
            values[f"{row.placement}.best_val_loss"] = row.best_val_loss
            values[f"{row.placement}.median_val_loss"] = row.median_val_loss
            values[f"{row.placement}.best_val_accuracy"] = row.best_val_accuracy
        self.end_study_run(status=status, metrics=values, tags=tags)

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
                self.client.log_inputs(run_id, datasets=inputs)
                return
            except Exception:
                # Workers starting together race to insert the same dataset row; once one
                # has, the others' retry links to it.
                if attempt == 2:
                    raise
                time.sleep(0.5 * (attempt + 1))

    def log_artifact(self, local_path: Path, run_id: str | None = None) -> None:
        self.client.log_artifact(run_id or self.parent_run_id, str(local_path))

    # --- child runs, one per trial -------------------------------------------------------

    def start_trial(self, spec: TrialSpec, extra_tags: Mapping[str, str] | None = None) -> str:
        from mlflow.entities import Param, RunTag

        config = spec.config
        run = self.client.create_run(
            self.experiment_id,
            run_name=f"trial-{spec.number:04d}-{config.placement}",
            tags={
                "mlflow.parentRunId": self.parent_run_id or "",
                "bnsearch.kind": "trial",
                "bnsearch.trial_number": str(spec.number),
                "bnsearch.seed": str(spec.seed),
                "bnsearch.state": "RUNNING",
                **({"bnsearch.block": str(spec.block)} if spec.block is not None else {}),
                **(extra_tags or {}),
            },
        )
        run_id = run.info.run_id
        params = {**config.as_params(), "seed": spec.seed}
        self.client.log_batch(
            run_id,
            params=[Param(k, _param_value(v)) for k, v in params.items()],
            tags=[RunTag("placement", config.placement)],
        )
        return run_id

    def log_trial_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        """Params a trial gets beyond its configuration (Keras Tuner's Hyperband keys)."""
        from mlflow.entities import Param

        self.client.log_batch(run_id, params=[Param(k, _param_value(v)) for k, v in params.items()])

    def log_epoch(self, run_id: str, step: int, metrics: Mapping[str, float]) -> None:
        """One epoch's metrics of a trial in progress (finite values only)."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        finite = [Metric(k, v, now, step) for k, v in metrics.items() if math.isfinite(v)]
        self.client.log_batch(run_id, metrics=finite)

    def finish_trial(self, run_id: str, result: TrialResult, log_history: bool = True) -> None:
        """Log the trial's per-epoch metrics (unless already logged live), its final and best
        values and its state, and end the run (FINISHED, KILLED if pruned, or FAILED)."""
        from mlflow.entities import Metric, RunTag

        now = int(time.time() * 1000)
        metrics = [
            Metric(name, float(value), now, step)
            for name in METRICS
            for step, value in enumerate(result.history.get(name, []))
            if math.isfinite(value) and log_history
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
            self.client.log_batch(
                run_id, metrics=metrics[start : start + 900], tags=tags if start == 0 else []
            )
        self.client.set_terminated(run_id, status=_STATUS[result.state])

    def kill_run(self, run_id: str, reason: str, status: str = "KILLED") -> None:
        """End a run that was interrupted or abandoned, keeping what it logged."""
        self.client.set_tag(run_id, "bnsearch.fail_reason", reason)
        self.client.set_tag(run_id, "bnsearch.state", "FAILED")
        self.client.set_terminated(run_id, status=status)

    def fail_abandoned_runs(
        self, trial_numbers: Iterable[int], parent_run_ids: Iterable[str], reason: str
    ) -> None:
        """End the runs of trials whose process died as FAILED with ``reason``, then each
        parent run among theirs (and ``parent_run_ids``) that has no running child left."""
        # A process can die between creating a trial's run and recording its id on the
        # trial: the run's own trial-number tag (set when it was created) finds it then.
        live = {
            run.data.tags.get("bnsearch.trial_number"): run
            for run in self.client.search_runs(
                [self.experiment_id],
                "tags.`bnsearch.kind` = 'trial' and attributes.status = 'RUNNING'",
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
            children = self.client.search_runs(
                [self.experiment_id],
                f"tags.`mlflow.parentRunId` = '{parent}' and attributes.status = 'RUNNING'",
            )
            if not children and self.client.get_run(parent).info.status == "RUNNING":
                self.client.set_tag(parent, "bnsearch.fail_reason", reason)
                self.client.set_terminated(parent, status="FAILED")


def _param_value(value: Any) -> str:
    if isinstance(value, float):
        return repr(value)
    return str(value)
