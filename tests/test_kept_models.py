"""The confirmation round keeps its models (``keep_models``): the population engine hands
each member over as a Keras model, and the study logs it to the trial's MLflow run."""

from __future__ import annotations

import numpy as np
import pytest

from bnsearch.data import Dataset, load_dataset, make_synthetic
from bnsearch.engines import PopulationEngine
from bnsearch.networks import NetworkSettings, compile_model
from bnsearch.study import run_study
from bnsearch.trial import PLACEMENTS, BNConfig, TrialSpec, TrialState
from tests.conftest import stores_in, tiny_config, trial_runs, write_tiny_csv

MLP = NetworkSettings(epochs=2, hidden_units=(8, 6))
CNN = NetworkSettings(
    epochs=2, family="cnn", conv_filters=(3, 4), hidden_units=(8,), activation="relu",
    initializer="he_uniform",
)  # fmt: skip


def _digits(n_rows: int) -> Dataset:
    digits = load_dataset("sklearn:digits", images=True)
    x = (digits.x[:n_rows] / 16.0).astype(np.float32)
    return Dataset(digits.name, x, digits.y[:n_rows], digits.class_names)


@pytest.mark.trains
@pytest.mark.parametrize(
    ("data", "network"),
    [(make_synthetic(240, seed=5).standardize(0.2), MLP), (_digits(240), CNN)],
    ids=["mlp", "cnn"],
)
def test_a_kept_population_member_is_a_keras_model_that_scores_its_val_loss(data, network):
    specs = [
        TrialSpec(i, BNConfig(placement=p, use_bias=i % 2 == 0, learning_rate=0.02), 30 + i)
        for i, p in enumerate(PLACEMENTS)
    ]
    trained = PopulationEngine().train(specs, data, network, keep_models=True)
    assert len(trained.models) == len(specs)
    _, _, x_val, y_val = data.split(network.validation_split)
    for spec, result, model in zip(specs, trained.results, trained.models, strict=True):
        assert result.state is TrialState.COMPLETE
        # Inference mode: the moving statistics and weights the member ended with.
        compile_model(model, spec.config, data.n_classes, network)
        loss, accuracy = model.evaluate(x_val, y_val, verbose=0, batch_size=len(x_val))
        np.testing.assert_allclose(loss, result.final("val_loss"), rtol=1e-4)
        np.testing.assert_allclose(accuracy, result.final("val_accuracy"), atol=1e-6)
        assert model.name.endswith(spec.config.placement)


@pytest.mark.trains
def test_without_keep_models_the_engine_keeps_nothing():
    trained = PopulationEngine().train(
        [TrialSpec(0, BNConfig(), 1)], make_synthetic(240, seed=5), MLP
    )
    assert trained.models == [] and len(trained.results) == 1


@pytest.mark.trains
def test_a_study_with_keep_models_logs_each_confirmation_model_and_no_search_model(
    tmp_path,
):
    import mlflow

    stores = stores_in(tmp_path)
    config = tiny_config(
        write_tiny_csv(tmp_path), stores, "kept", n_trials=3, confirm_seeds=1, keep_models=True
    )
    run_study(config)
    client, runs = trial_runs(stores["tracking_uri"], "kept")
    phases = {r.info.run_id: r.data.tags.get("bnsearch.phase") for r in runs}
    assert sorted(phases.values()) == ["confirm"] * 3 + ["search"] * 3
    # Each kept model is a LoggedModel of the experiment (its Models tab), from its trial's run.
    experiment_id = runs[0].info.experiment_id
    logged = client.search_logged_models(experiment_ids=[experiment_id])
    assert sorted(phases[m.source_run_id] for m in logged) == ["confirm"] * 3
    mlflow.set_tracking_uri(stores["tracking_uri"])
    rows = np.random.default_rng(0).normal(size=(4, 14)).astype("float32")
    for model in logged:
        run = client.get_run(model.source_run_id)
        assert run.info.status == "FINISHED"  # ended before its model was logged; still so
        assert [o.model_id for o in run.outputs.model_outputs] == [model.model_id]
        assert (model.name, model.status.name) == ("model", "READY")
        assert model.params["placement"] == run.data.params["placement"]
        # The run's latest metrics are the model's: the Models tab compares them.
        metrics = {m.key: m.value for m in model.metrics}
        assert metrics["final_val_loss"] == run.data.metrics["final_val_loss"]
        assert metrics["val_loss"] == run.data.metrics["val_loss"]
        artifacts = {a.path for a in client.list_logged_model_artifacts(model.model_id)}
        assert {"MLmodel", "input_example.json"} <= artifacts
        predictions = mlflow.pyfunc.load_model(f"models:/{model.model_id}").predict(rows)
        assert predictions.shape == (4, 2)
        assert np.allclose(predictions.sum(axis=1), 1.0, atol=1e-5)
    # The run's path to its model, as before LoggedModels, still leads there.
    run_id = logged[0].source_run_id
    assert mlflow.pyfunc.load_model(f"runs:/{run_id}/model").metadata.model_id == logged[0].model_id
