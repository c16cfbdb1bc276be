"""Files logged to a run: artifacts (the study's report and plots) and Keras models as MLflow
models, optionally registered.

A model goes through MLflow's fluent API (``mlflow.keras``, ``mlflow.register_model``),
which reads the process-wide tracking URI, so the resolved URI of the connection is set
first; the upload itself goes through :meth:`Connection.call` like every other write.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from bnsearch.tracking._connection import Connection

__all__ = ["INPUT_EXAMPLE_ROWS", "Models"]

# Rows of the data kept with a logged model as its input example.
INPUT_EXAMPLE_ROWS = 5


class Models:
    """The tracker's artifacts and models (a mixin of :class:`MlflowTracker`, which sets the
    state below)."""

    connection: Connection
    parent_run_id: str | None

    def log_artifact(self, local_path: Path, run_id: str | None = None) -> None:
        """Upload the file ``local_path`` to ``run_id`` (the parent run by default)."""
        self.connection.call("log_artifact", run_id or self.parent_run_id, str(local_path))

    def log_keras_model(
        self, run_id: str, model: Any, rows: Any, register_as: str | None = None
    ) -> str:
        """Log ``model`` to ``run_id`` as an MLflow model (Keras flavor, loadable with
        ``mlflow.pyfunc.load_model``) with the first ``INPUT_EXAMPLE_ROWS`` of ``rows`` as
        its input example and their predictions as its signature's output, registered as
        ``register_as`` when given; the model's URI."""
        import mlflow
        from mlflow.models import infer_signature

        input_example = rows[:INPUT_EXAMPLE_ROWS].astype("float32")
        signature = infer_signature(input_example, model.predict(input_example, verbose=0))
        self.connection.experiment()  # connected: the URI below is resolved
        mlflow.set_tracking_uri(self.connection.resolved_uri)
        # mlflow.keras.log_model writes the input example before it creates the model's
        # folder (MLflow 3.17); save_model into a folder that exists, then log it.
        with tempfile.TemporaryDirectory(prefix="bnsearch-model-") as folder:
            path = Path(folder) / "model"
            path.mkdir()
            mlflow.keras.save_model(
                model, str(path), signature=signature, input_example=input_example
            )
            self.connection.call("log_artifacts", run_id, str(path), "model")
        uri = f"runs:/{run_id}/model"
        if register_as is None:
            return uri
        version = mlflow.register_model(uri, register_as)
        return f"models:/{register_as}/{version.version}"
