"""From the verdict to a model: each placement's best configuration as an MLflow model."""

from __future__ import annotations

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from bnsearch.errors import ConfigError
from bnsearch.export import export_best
from bnsearch.study import run_study
from tests.conftest import stores_in, tiny_config, write_tiny_csv


@pytest.fixture(scope="module")
def studied(tmp_path_factory):
    """One tiny study (three placements, one block) that every export test reads."""
    folder = tmp_path_factory.mktemp("export")
    stores = stores_in(folder)
    config = tiny_config(write_tiny_csv(folder), stores, "exported", n_trials=3)
    run_study(config)
    return config, stores


def test_export_logs_a_model_that_loads_with_pyfunc_predicts_and_is_registered(studied):
    import mlflow

    config, stores = studied
    (exported,) = export_best(config, placement="before", register_as="bn-best-before")

    assert exported.model_uri == "models:/bn-best-before/1"
    mlflow.set_tracking_uri(stores["tracking_uri"])
    model = mlflow.pyfunc.load_model(exported.model_uri)
    rows = np.random.default_rng(0).normal(size=(4, 14)).astype("float32")
    predictions = model.predict(rows)
    assert predictions.shape == (4, 2)
    assert np.allclose(predictions.sum(axis=1), 1.0, atol=1e-5)  # softmax probabilities
    assert model.metadata.get_input_schema().inputs[0].shape == (-1, 14)
    client = MlflowClient(stores["tracking_uri"])
    run = client.get_run(exported.run_id)
    assert run.data.tags["bnsearch.kind"] == "export"
    assert run.data.params["placement"] == "before"
    artifacts = {a.path for a in client.list_artifacts(exported.run_id, "model")}
    assert {"model/MLmodel", "model/input_example.json"} <= artifacts


def test_export_of_every_placement_without_registering(studied):
    config, _ = studied
    exported = export_best(config)
    assert sorted(e.placement for e in exported) == ["after", "before", "none"]
    assert all(e.model_uri == f"runs:/{e.run_id}/model" for e in exported)


def test_export_of_a_placement_the_study_lacks_names_the_ones_it_has(studied):
    config, _ = studied
    with pytest.raises(ConfigError, match=r"placement 'input' \(placements with one: "):
        export_best(config, placement="input")
