"""bnsearch inside your own code: your model rewritten, your Optuna objective and your Keras
Tuner hypermodel in paired blocks with a verdict, and both logged to a real MLflow store."""

from __future__ import annotations

import optuna
import pytest

import bnsearch
from bnsearch.errors import ConfigError
from tests.conftest import empty_mlflow_store_at

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _runs(uri: str, experiment: str) -> tuple[object, list]:
    import mlflow

    client = mlflow.MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == len(runs) - 1, "every other run is nested under the parent"
    return client, [parent, *children]


def _functional_model():
    import keras

    inputs = keras.Input(shape=(14,))
    hidden = keras.layers.Dense(16, activation="tanh")(inputs)
    hidden = keras.layers.Dense(8, activation="relu")(hidden)
    return keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(hidden))


def test_your_functional_model_is_rewritten_for_each_placement():
    model = _functional_model()
    kinds = {
        placement: [
            type(layer).__name__
            for layer in bnsearch.rewrite(model, bnsearch.BNConfig(placement=placement)).layers
        ][1:]
        for placement in ("none", "before", "after")
    }

    assert kinds["none"] == ["Dense", "Activation", "Dense", "Activation", "Dense"]
    assert kinds["before"] == [
        "Dense", "BatchNormalization", "Activation",
        "Dense", "BatchNormalization", "Activation", "Dense",
    ]  # fmt: skip
    assert kinds["after"] == [
        "Dense", "Activation", "BatchNormalization",
        "Dense", "Activation", "BatchNormalization", "Dense",
    ]  # fmt: skip
    assert [type(layer).__name__ for layer in model.layers][1:] == ["Dense"] * 3  # untouched


@pytest.mark.trains
def test_your_own_objective_in_paired_blocks_reaches_a_settled_verdict(tmp_path, cli):
    """Real training of your own model, rewritten per trial; read after every block."""
    import keras

    data = bnsearch.load_dataset(n_rows=400)  # unscaled features: BN on the inputs matters
    model = _functional_model()

    def train(config, seed):
        keras.utils.set_random_seed(seed)
        net = bnsearch.rewrite(model, config, seed)
        net.compile(
            optimizer=keras.optimizers.SGD(config.learning_rate, momentum=0.9),
            loss="sparse_categorical_crossentropy",
        )
        fit = net.fit(data.x, data.y, epochs=3, batch_size=32, validation_split=0.2, verbose=0)
        return fit.history["val_loss"][-1]

    storage = f"sqlite:///{tmp_path / 'mine.db'}"
    study = optuna.create_study(
        study_name="mine", storage=storage, sampler=optuna.samplers.RandomSampler(seed=0)
    )
    objective = bnsearch.paired_objective(train)
    verdict = None
    for _ in range(20):  # at most 20 blocks; the anytime-valid rule may be read after each
        study.optimize(objective, n_trials=3)
        verdict = bnsearch.verdict(study)
        if verdict.settled:
            break

    assert verdict is not None and verdict.settled, verdict
    assert verdict.bn.outcome == "helps" and "before" in verdict.bn.helping
    report = cli("report", "--study-name", "mine", "--storage", storage, cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    plain = verdict.words.replace("`", "")  # the terminal's words carry no Markdown
    assert report.stdout.startswith(f"Verdict: {plain}"), report.stdout[:300]


def test_a_study_without_blocks_is_told_how_to_make_them():
    study = optuna.create_study()
    study.optimize(lambda trial: bnsearch.suggest(trial).learning_rate, n_trials=3)

    with pytest.raises(ConfigError) as raised:
        bnsearch.verdict(study)
    assert "bnsearch.paired_objective(train)" in str(raised.value)


def test_the_optuna_callback_nests_a_run_per_trial_with_its_epochs_and_state(tmp_path):
    empty_mlflow_store_at(tmp_path / "mlflow.db")  # not what this test is about
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    losses = {"none": 0.8, "before": 0.6, "after": 0.7}

    def objective(trial):
        config = bnsearch.suggest(trial)
        for epoch in range(3):
            trial.report(losses[config.placement] + 0.1 * (2 - epoch), epoch)
        if trial.number == 1:
            raise optuna.TrialPruned()
        if trial.number == 2:
            raise ValueError("your objective failed")
        return losses[config.placement]

    study = optuna.create_study(study_name="yours")
    with bnsearch.MlflowCallback(uri) as callback:
        study.optimize(objective, n_trials=4, callbacks=[callback], catch=(ValueError,))

    client, (parent, *children) = _runs(uri, "yours")
    assert parent.info.run_id == callback.parent_run_id and parent.info.status == "FINISHED"
    by_number = {int(r.data.tags["bnsearch.trial_number"]): r for r in children}
    assert sorted(by_number) == [0, 1, 2, 3]
    assert [by_number[n].info.status for n in range(4)] == [
        "FINISHED", "KILLED", "FAILED", "FINISHED",
    ]  # fmt: skip
    epochs = client.get_metric_history(by_number[0].info.run_id, "val_loss")
    assert [m.step for m in epochs] == [0, 1, 2]
    assert by_number[3].data.params["placement"] == study.trials[3].params["placement"]


@pytest.mark.trains
def test_the_keras_tuner_logger_and_a_verdict_from_a_paired_tuner(tmp_path):
    import keras
    import keras_tuner

    data = bnsearch.load_dataset(n_rows=200, standardize=True)

    def build(hp):
        config = bnsearch.suggest_keras_tuner(hp)
        inputs = keras.Input(shape=(data.n_features,))
        hidden = keras.layers.Dense(8, activation="tanh")(inputs)
        model = bnsearch.rewrite(
            keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(hidden)), config
        )
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
        return model

    paired = bnsearch.paired_oracle_class(keras_tuner.oracles.RandomSearchOracle)
    tuner = keras_tuner.Tuner(
        oracle=paired(objective="val_loss", max_trials=6, seed=0),
        hypermodel=build,
        directory=str(tmp_path),
        project_name="yours-kt",
    )
    empty_mlflow_store_at(tmp_path / "mlflow.db")  # not what this test is about
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    runs = bnsearch.log_keras_tuner(tuner, uri)
    tuner.search(data.x, data.y, epochs=2, validation_split=0.2, verbose=0)

    client, (parent, *children) = _runs(uri, "yours-kt")
    assert parent.info.run_id == runs.parent_run_id and parent.info.status == "FINISHED"
    assert len(children) == 6 and {r.info.status for r in children} == {"FINISHED"}
    assert sorted(r.data.params["placement"] for r in children) == sorted(
        ["none", "before", "after"] * 2
    )
    history = client.get_metric_history(children[0].info.run_id, "val_loss")
    assert [m.step for m in history] == [0, 1]
    verdict = bnsearch.verdict(tuner, until="budget")
    assert verdict.n_blocks == 2
    assert parent.data.tags["bnsearch.verdict_headline"] == verdict.headline
