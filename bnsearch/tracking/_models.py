"""Artifacts, and Keras models as MLflow 3 LoggedModels, optionally registered. Not
``mlflow.keras.log_model``: in MLflow 3.17 it writes the input example before it creates the
model's folder, and fails; so this does what ``mlflow.models.Model.log`` does, step by step."""

from __future__ import annotations

import contextlib
import json
import math
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bnsearch.tracking._connection import Connection, as_metrics

if TYPE_CHECKING:
    import numpy as np
    from mlflow.entities import Run


class Models(Connection):
    """The tracker's artifacts and models (a part of :class:`MlflowTracker`)."""

    def log_artifact(self, local_path: Path) -> None:
        self.call("log_artifact", self.parent_run_id, str(local_path))

    def log_keras_model(
        self,
        run_id: str,
        model: Any,
        rows: np.ndarray,
        register_as: str | None = None,
        metrics: Mapping[str, float | None] | None = None,
    ) -> str:
        """Log ``model`` as a LoggedModel of ``run_id`` with the run's params and latest metrics,
        and ``metrics``, registered as ``register_as`` if given: its ``models:/`` URI."""
        import mlflow.keras
        from mlflow.entities import LoggedModelOutput, LoggedModelStatus
        from mlflow.models import Model, infer_signature

        input_example = rows[:5].astype("float32")
        signature = infer_signature(input_example, model.predict(input_example, verbose=0))
        run = self.call("get_run", run_id)
        logged = self.call(
            "create_logged_model",
            run.info.experiment_id,
            name="model",  # runs:/<run_id>/model still finds the model by it
            source_run_id=run_id,
            params=dict(run.data.params),
        )
        model_id = logged.model_id
        try:
            with tempfile.TemporaryDirectory(prefix="bnsearch-model-") as folder:
                description = Model(
                    artifact_path=logged.artifact_location,
                    run_id=run_id,
                    model_uuid=model_id,
                    model_id=model_id,
                )
                mlflow.keras.save_model(
                    model,
                    folder,
                    mlflow_model=description,
                    signature=signature,
                    input_example=input_example,
                    pip_requirements=_model_requirements(),
                )
                self.call("log_model_artifacts", model_id, folder)
            self.call("log_outputs", run_id, [LoggedModelOutput(model_id, step=0)])
            self._link_metrics(run, model_id, metrics or {})
            self.call("finalize_logged_model", model_id, LoggedModelStatus.READY)
        except BaseException:
            # Marked FAILED if MLflow takes it; the first error is the one to say.
            with contextlib.suppress(Exception):
                self.call("finalize_logged_model", model_id, LoggedModelStatus.FAILED)
            raise
        uri = f"models:/{model_id}"
        if register_as is None:
            return uri
        return self._register_version(uri, register_as, run_id, model_id)

    def _link_metrics(self, run: Run, model_id: str, metrics: Mapping[str, float | None]) -> None:
        """Log ``metrics`` for the model, and link it to each other metric's latest entry."""
        from mlflow.entities import Metric

        run_id = run.info.run_id
        given = [(key, value, 0) for key, value in metrics.items()]
        linked = as_metrics(given, model_id=model_id, run_id=run_id)
        for key in sorted(set(run.data.metrics) - set(metrics)):
            history = self.call("get_metric_history", run_id, key)
            latest = max(history, key=lambda m: (m.step, m.timestamp), default=None)
            if latest is not None and math.isfinite(latest.value):
                linked.append(
                    Metric(key, latest.value, latest.timestamp, latest.step,
                           model_id=model_id, run_id=run_id)
                )  # fmt: skip
        if linked:
            self.log_metrics(run_id, linked)

    def _register_version(self, uri: str, name: str, run_id: str, model_id: str) -> str:
        import mlflow
        from mlflow.exceptions import MlflowException
        from mlflow.utils.mlflow_tags import MLFLOW_MODEL_VERSIONS

        # MLflow's registry resolves a models:/ source through the process-wide tracking
        # URI, not the client's (MLflow 3.17's SQL registry store).
        mlflow.set_tracking_uri(self.resolved_uri)
        try:
            self.call("create_registered_model", name)
        except MlflowException as error:
            if error.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
                raise
        version = self.call("create_model_version", name, uri, run_id=run_id, model_id=model_id)
        # As mlflow.register_model does: the LoggedModel lists the versions made from it.
        versions = [{"name": version.name, "version": version.version}]
        self.call("set_logged_model_tags", model_id, {MLFLOW_MODEL_VERSIONS: json.dumps(versions)})
        return f"models:/{name}/{version.version}"


def _model_requirements() -> list[str] | None:
    """Keras and TensorFlow pinned (MLflow's inference of them loads the model again in a
    subprocess); None where TensorFlow has another name (tensorflow-cpu, ...)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return [f"keras=={version('keras')}", f"tensorflow=={version('tensorflow')}"]
    except PackageNotFoundError:
        return None
