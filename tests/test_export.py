"""From the verdict to a model: each placement's best configuration as an MLflow model, a
LoggedModel of the experiment (MLflow 3) linked to its export run."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from bnsearch.errors import ConfigError
from bnsearch.export import export_best
from bnsearch.study import run_study
from tests.conftest import stores_in, tiny_config, write_tiny_csv

ROWS = np.random.default_rng(0).normal(size=(4, 14)).astype("float32")


@pytest.fixture(scope="module")
def studied(tmp_path_factory):
    """One tiny study (three placements, one block) that every export test reads."""
    folder = tmp_path_factory.mktemp("export")
    stores = stores_in(folder)
    config = tiny_config(write_tiny_csv(folder), stores, "exported", n_trials=3)
    run_study(config)
    return config, stores


def _predicts_probabilities(uri: str, tracking_uri: str):
    """The model at ``uri``, loaded with pyfunc, after checking its predictions."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    model = mlflow.pyfunc.load_model(uri)
    predictions = model.predict(ROWS)
    assert predictions.shape == (4, 2)
    assert np.allclose(predictions.sum(axis=1), 1.0, atol=1e-5)  # softmax probabilities
    return model


@pytest.mark.trains
def test_export_logs_a_model_that_loads_with_pyfunc_predicts_and_is_registered(studied):
    config, stores = studied
    (exported,) = export_best(config, placement="before", register_as="bn-best-before")

    assert exported.model_uri == "models:/bn-best-before/1"
    model = _predicts_probabilities(exported.model_uri, stores["tracking_uri"])
    assert model.metadata.get_input_schema().inputs[0].shape == (-1, 14)
    client = MlflowClient(stores["tracking_uri"])
    run = client.get_run(exported.run_id)
    assert run.data.tags["bnsearch.kind"] == "export"
    assert run.data.params["placement"] == "before"
    # The version comes from the run's LoggedModel, which keeps the input example.
    version = client.get_model_version("bn-best-before", "1")
    model_id = version.source.removeprefix("models:/")
    assert run.outputs.model_outputs[0].model_id == model_id == model.metadata.model_id
    logged = client.get_logged_model(model_id)
    assert (logged.source_run_id, logged.status.name) == (exported.run_id, "READY")
    assert logged.params["placement"] == "before"
    assert '"bn-best-before"' in logged.tags["mlflow.modelVersions"]
    artifacts = {a.path for a in client.list_logged_model_artifacts(model_id)}
    assert {"MLmodel", "input_example.json"} <= artifacts


@pytest.mark.trains
def test_export_as_typed_logs_a_logged_model_per_placement_linked_to_its_run(studied, cli):
    config, stores = studied
    result = cli(
        "export", "--study-name", "exported", "--storage", stores["storage"],
        "--tracking-uri", stores["tracking_uri"], "--data", config.data, "--target", "label",
        "--epochs", "2", "--hidden-units", "8,8", cwd=Path(config.data).parent,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    printed = dict(re.findall(r"exported the best (\w+) configuration .* as (\S+)", result.stdout))
    assert sorted(printed) == ["after", "before", "none"]
    client = MlflowClient(stores["tracking_uri"])
    experiment = client.get_experiment_by_name("exported")
    logged = {
        f"models:/{m.model_id}": m
        for m in client.search_logged_models(experiment_ids=[experiment.experiment_id])
    }
    for placement, uri in printed.items():
        model = logged[uri]  # a LoggedModel of the experiment, by the URI export printed
        run = client.get_run(model.source_run_id)
        assert run.data.tags["bnsearch.kind"] == "export"
        assert run.data.params["placement"] == model.params["placement"] == placement
        assert [o.model_id for o in run.outputs.model_outputs] == [model.model_id]
        assert (model.name, model.status.name) == ("model", "READY")
        _predicts_probabilities(uri, stores["tracking_uri"])


@pytest.mark.trains
def test_export_of_a_placement_the_study_lacks_names_the_ones_it_has(studied):
    config, _ = studied
    with pytest.raises(ConfigError, match=r"placement 'input' \(placements with one: "):
        export_best(config, placement="input")


def test_metrics_given_with_a_model_are_the_runs_and_the_models(tmp_path):
    """What ``export`` passes as ``metrics``: logged once to the run, linked to the model."""
    import keras

    from bnsearch.tracking import MlflowTracker

    uri = stores_in(tmp_path)["tracking_uri"]
    tracker = MlflowTracker(uri, "given")
    run_id = tracker.start_study_run("export-given", {"placement": "none"}, {})
    network = keras.Sequential([keras.Input((14,)), keras.layers.Dense(2, activation="softmax")])
    model_uri = tracker.log_keras_model(
        run_id, network, ROWS, metrics={"final_val_loss": 0.25, "diverged": float("nan")}
    )
    tracker.end_study_run()
    client = MlflowClient(uri)
    model = client.get_logged_model(model_uri.removeprefix("models:/"))
    assert {m.key: m.value for m in model.metrics} == {"final_val_loss": 0.25}
    assert [m.value for m in client.get_metric_history(run_id, "final_val_loss")] == [0.25]
    assert client.get_run(run_id).info.status == "FINISHED"
    _predicts_probabilities(model_uri, uri)
