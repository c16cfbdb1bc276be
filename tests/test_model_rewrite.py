"""Your own Keras model (``--model``) rewritten into each placement, with real Keras: the
rule of :mod:`bnsearch.networks._rewrite`, its refusals, a ``--model`` study through the
CLI, ``python -m bnsearch model --show``, and regression on both engines."""

from __future__ import annotations

import textwrap
from dataclasses import replace
from pathlib import Path

import keras
import numpy as np
import pytest

from bnsearch.data import Dataset, load_dataset, make_synthetic
from bnsearch.engines import KerasEngine, PopulationEngine, engine_for, engine_notice
from bnsearch.errors import ConfigError, DataError
from bnsearch.networks import NetworkSettings, build_model, load_plan, network_graph
from bnsearch.trial import BNConfig, TrialSpec, TrialState, layer_seed

MODELS = textwrap.dedent(
    """
    import keras
    from keras import layers


    def thread():
        # The question's model in plain Keras 3: Dense(64, input_dim=14), tanh, Dropout(0.5).
        return keras.Sequential([
            keras.Input((14,)),
            layers.Dense(8), layers.Activation("tanh"), layers.Dropout(0.5),
            layers.Dense(8), layers.Activation("tanh"), layers.Dropout(0.5),
            layers.Dense(2), layers.Activation("softmax"),
        ])


    def functional():
        # Fused activations, a BN already before one activation and after another.
        inputs = keras.Input((14,))
        x = layers.Dense(6, activation="relu", name="fused")(inputs)
        x = layers.BatchNormalization(name="old_after")(x)
        x = layers.Dense(5, use_bias=False, name="separate")(x)
        x = layers.BatchNormalization(name="old_before")(x)
        x = layers.ReLU(name="separate_relu")(x)
        x = layers.Dropout(0.3, name="drop")(x)
        return keras.Model(inputs, layers.Dense(2, activation="softmax", name="out")(x))


    def with_layer_norm():
        inputs = keras.Input((14,))
        x = layers.Dense(6, activation="tanh", name="hidden")(inputs)
        x = layers.LayerNormalization(name="ln")(x)
        return keras.Model(inputs, layers.Dense(2, activation="softmax", name="out")(x))


    def no_site():
        inputs = keras.Input((14,))
        x = layers.Dense(6, name="linear")(inputs)
        return keras.Model(inputs, layers.Dense(2, activation="softmax")(x))


    def three_outputs():
        return keras.Sequential([keras.Input((14,)), layers.Dense(4, activation="relu"),
                                 layers.Dense(3, activation="softmax")])


    def regressor():
        return keras.Sequential([keras.Input((5,)), layers.Dense(8, activation="tanh"),
                                 layers.Dense(1)])


    def shared():
        inputs = keras.Input((14,))
        dense = layers.Dense(14, activation="relu")
        x = dense(dense(inputs))
        return keras.Model(inputs, layers.Dense(2, activation="softmax")(x))


    def compiled_adam():
        model = thread()
        model.compile(optimizer=keras.optimizers.Adam(0.123), loss="mse")
        return model


    not_a_model = 3
    """
)


@pytest.fixture
def models(tmp_path, monkeypatch) -> str:
    """The module ``my_models`` (above) importable; its name."""
    (tmp_path / "my_models.py").write_text(MODELS)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "my_models"


def _kinds(model) -> list[str]:
    kinds = []
    for layer in model.layers:
        name = type(layer).__name__
        if name == "InputLayer":
            continue
        if name == "Activation":
            kinds.append(layer.get_config()["activation"])
        else:
            kinds.append({"BatchNormalization": "BN", "ReLU": "relu"}.get(name, name))
    return kinds


@pytest.mark.parametrize(
    ("placement", "expected"),
    [
        ("none", "Dense tanh Dropout Dense tanh Dropout Dense softmax"),
        ("before", "Dense BN tanh Dropout Dense BN tanh Dropout Dense softmax"),
        ("after", "Dense tanh BN Dropout Dense tanh BN Dropout Dense softmax"),
        ("before_output", "Dense BN tanh Dropout Dense BN tanh Dropout Dense BN softmax"),
        ("input", "BN Dense tanh Dropout Dense tanh Dropout Dense softmax"),
    ],
)
def test_a_sequential_with_separate_activations_is_the_built_in_network(
    models, placement, expected
):
    config = BNConfig(placement=placement, use_bias=False, momentum=0.9, epsilon=1e-5)
    network = NetworkSettings(model=f"{models}:thread")
    model = build_model(config, 14, 2, network, seed=7)
    assert _kinds(model) == expected.split()
    built_in = build_model(config, 14, 2, NetworkSettings(hidden_units=(8, 8)), seed=7)
    assert _kinds(built_in) == expected.split()
    # The same initial weights as the built-in network: the model's own initialisers, seeded
    # by layer_seed, and a bias only where no BN follows directly.
    for ours, theirs in zip(model.weights, built_in.weights, strict=True):
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            assert layer.momentum == pytest.approx(0.9) and layer.epsilon == pytest.approx(1e-5)
    graph = network_graph(network, (14,), 2)
    assert [op.shape for op in graph.ops if op.role == "site"] == [(8,), (8,)]


@pytest.mark.parametrize(
    ("placement", "expected"),
    [
        ("none", "Dense relu Dense relu Dropout Dense"),
        ("before", "Dense BN relu Dense BN relu Dropout Dense"),
        ("after", "Dense relu BN Dense relu BN Dropout Dense"),
    ],
)
def test_a_functional_model_with_fused_activations_and_bn_already_present(
    models, placement, expected
):
    config = BNConfig(placement=placement, use_bias=False, dropout=0.125)
    model = build_model(config, 14, 2, NetworkSettings(model=f"{models}:functional"), seed=3)
    assert _kinds(model) == expected.split()
    names = [layer.name for layer in model.layers]
    assert "old_after" not in names and "old_before" not in names  # removed, re-placed
    fused = model.get_layer("fused")
    assert fused.get_config()["activation"] == "linear"  # split: Dense, then Activation(relu)
    assert fused.use_bias is (placement != "before")  # dropped only where a BN follows
    # Built with use_bias=False: a bias back where no BN follows it directly.
    assert model.get_layer("separate").use_bias is (placement != "before")
    drop = model.get_layer("drop")
    assert drop.rate == pytest.approx(0.125)  # the trial's dropout rate
    assert drop.seed == layer_seed(3, "dropout", 2)  # after the second Dense
    assert model.get_layer("out").get_config()["activation"] == "softmax"  # left as it is
    plan = load_plan(f"{models}:functional")
    assert plan.site_names == ["fused", "separate"]


@pytest.mark.trains
def test_an_unknown_layer_is_kept_and_named_once_and_the_model_trains_on_keras(models):
    network = NetworkSettings(model=f"{models}:with_layer_norm", epochs=1)
    model = build_model(BNConfig(placement="after"), 14, 2, network, seed=1)
    assert _kinds(model) == ["Dense", "tanh", "BN", "LayerNormalization", "Dense"]
    notice = engine_notice(network)
    assert notice.count("LayerNormalization 'ln'") == 2  # kept; and why not the population
    assert "keeps these layers as they are" in notice and "Keras engine" in notice
    assert engine_for("population", network) == "keras"
    with pytest.raises(ConfigError, match="LayerNormalization 'ln'"):
        PopulationEngine().train([TrialSpec(0, BNConfig(), 1)], make_synthetic(64), network)


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("no_site", "has no site for BatchNormalization"),
        ("shared", "called more than once \\(a shared layer\\)"),
        ("not_a_model", "not a Keras model or a function"),
        ("nothing", "has no 'nothing'"),
    ],
)
def test_a_model_that_cannot_be_rewritten_is_refused_in_one_line(models, name, words):
    with pytest.raises(ConfigError, match=words) as error:
        build_model(BNConfig(), 14, 2, NetworkSettings(model=f"{models}:{name}"))
    assert "\n" not in str(error.value)


def test_a_subclassed_model_is_refused(tmp_path, monkeypatch):
    (tmp_path / "sub_models.py").write_text(
        textwrap.dedent(
            """
            import keras

            class Mine(keras.Model):
                def __init__(self):
                    super().__init__()
                    self.dense = keras.layers.Dense(2, activation="softmax")

                def call(self, x):
                    return self.dense(x)

            def build():
                return Mine()
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError, match="subclassed Keras model"):
        load_plan("sub_models:build")


@pytest.mark.parametrize(
    ("name", "shape", "n_classes", "words"),
    [
        ("thread", (14,), 3, "the data has 3 classes, so it must end in Dense\\(3\\)"),
        ("three_outputs", (14,), 1, "a regression needs one output unit"),
        ("regressor", (5,), 2, "must end in Dense\\(2\\) with a softmax"),
        ("thread", (9,), 2, "takes rows of shape \\(14,\\)"),
    ],
)
def test_a_model_whose_input_or_output_does_not_suit_the_task_is_refused(
    models, name, shape, n_classes, words
):
    network = NetworkSettings(model=f"{models}:{name}")
    with pytest.raises(ConfigError, match=words) as error:
        build_model(BNConfig(), shape, n_classes, network)
    assert "\n" not in str(error.value)
    data = Dataset("d", np.zeros((40, *shape), np.float32), np.arange(40) % 2, ("0", "1"))
    if n_classes == 1:
        data = Dataset("d", data.x, np.zeros(40, np.float32), (), task="regression")
    if data.n_classes == n_classes:  # the study checks the data before training
        with pytest.raises(ConfigError, match=words):
            KerasEngine().check_fits(data, network)


def test_a_keras_file_with_a_lambda_is_refused_without_turning_safe_mode_off(tmp_path):
    model = keras.Sequential(
        [keras.Input((14,)), keras.layers.Dense(4, activation="relu"),
         keras.layers.Lambda(lambda x: x * 2, name="doubling"),
         keras.layers.Dense(2, activation="softmax")]
    )  # fmt: skip
    path = tmp_path / "lambda.keras"
    model.save(path)
    with pytest.raises(ConfigError, match="Lambda 'doubling'.*safe_mode") as error:
        load_plan(str(path))
    assert "\n" not in str(error.value) and "module:name" in str(error.value)


def test_a_keras_file_that_needs_custom_classes_names_them(tmp_path):
    @keras.saving.register_keras_serializable(package="tests")
    class Doubling(keras.layers.Layer):
        def call(self, x):
            return x * 2

    model = keras.Sequential(
        [keras.Input((14,)), keras.layers.Dense(4, activation="relu"), Doubling(name="twice"),
         keras.layers.Dense(2, activation="softmax")]
    )  # fmt: skip
    path = tmp_path / "custom.keras"
    model.save(path)
    keras.saving.get_custom_objects().pop("tests>Doubling")
    with pytest.raises(ConfigError, match="custom classes.*Doubling 'twice'.*module:name"):
        load_plan(str(path))


@pytest.mark.trains
def test_a_keras_file_of_the_thread_network_trains_on_the_population_engine(models, tmp_path):
    path = tmp_path / "thread.keras"
    load_plan(f"{models}:thread").source.save(path)
    network = NetworkSettings(model=str(path), epochs=1)
    assert engine_for("population", network) == "population"
    assert engine_notice(network) is None
    data = make_synthetic(160, seed=1).standardize(0.2)
    specs = [TrialSpec(i, BNConfig(placement=p), seed=4) for i, p in enumerate(("none", "after"))]
    output = PopulationEngine().train(specs, data, network, keep_models=True)
    assert [r.state for r in output.results] == [TrialState.COMPLETE] * 2
    assert [r.spec for r in output.results] == specs
    # The trained member comes back as the rewrite of the file's model.
    assert "features" in [layer.name for layer in output.models[1].layers]
    assert _kinds(output.models[1]).count("BN") == 2


def test_keep_optimizer_trains_with_the_models_own_optimizer(models):
    network = NetworkSettings(model=f"{models}:compiled_adam", keep_optimizer=True)
    model = build_model(BNConfig(learning_rate=0.05), 14, 2, network)
    assert type(model.optimizer).__name__ == "Adam"
    assert float(model.optimizer.learning_rate) == pytest.approx(0.05)  # the trial's
    assert engine_for("population", network) == "keras"
    thread = NetworkSettings(model=f"{models}:thread")
    assert type(build_model(BNConfig(), 14, 2, thread).optimizer).__name__ == "SGD"
    with pytest.raises(ConfigError, match="was not compiled"):
        build_model(BNConfig(), 14, 2, NetworkSettings(model=thread.model, keep_optimizer=True))


def test_conv_models_plain_and_residual_are_layer_graphs_the_population_engine_trains(
    tmp_path, monkeypatch
):
    (tmp_path / "conv_models.py").write_text(
        textwrap.dedent(
            """
            import keras
            from keras import layers

            def build():
                return keras.Sequential([
                    keras.Input((8, 8, 1)),
                    layers.Conv2D(4, 3, padding="same", use_bias=True), layers.ReLU(),
                    layers.MaxPooling2D(2, padding="same"),
                    layers.Flatten(), layers.Dense(8, activation="relu"),
                    layers.Dense(10, activation="softmax"),
                ])

            def residual():
                inputs = keras.Input((8, 8, 1))
                x = layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
                y = layers.Conv2D(4, 3, padding="same", activation="relu")(x)
                x = layers.GlobalAveragePooling2D()(layers.Add()([x, y]))
                return keras.Model(inputs, layers.Dense(10, activation="softmax")(x))
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    network = NetworkSettings(model="conv_models:build")
    graph = network_graph(network, (8, 8, 1), 10)
    assert [op.kind for op in graph.ops] == ["core", "max_pool", "flatten", "core", "core"]
    assert not any(op.kind == "dropout" for op in graph.ops) and network.images
    residual = NetworkSettings(model="conv_models:residual")
    graph = network_graph(residual, (8, 8, 1), 10)
    assert [op.kind for op in graph.ops] == ["core", "core", "add", "global_avg_pool", "core"]
    assert PopulationEngine.trains(residual)
    model = build_model(BNConfig(placement="before"), (8, 8, 1), 10, residual)
    assert _kinds(model).count("BN") == 2  # both convolutions are sites
    # The raw-scale notice reads feature columns; pixels share one scale (the digits' border
    # pixels alone span 247x), so an image network is not checked, built-in or --model.
    from bnsearch.config import StudyConfig
    from bnsearch.study import load_study_dataset, scale_notice

    for net, noticed in ((NetworkSettings(), True), (residual, False),
                         (NetworkSettings(family="cnn"), False)):  # fmt: skip
        config = StudyConfig(data="sklearn:digits", network=net)
        assert (scale_notice(config, load_study_dataset(config)) is not None) == noticed


@pytest.mark.trains
def test_a_model_study_through_the_cli_logs_model_txt_and_show_prints_it(
    models, tiny_csv, tmp_path, cli
):
    from tests.conftest import trial_runs

    stores = [f"sqlite:///{tmp_path / 'optuna.db'}", f"sqlite:///{tmp_path / 'mlflow.db'}"]
    args = [
        "study", "--data", str(tiny_csv), "--target", "label", "--model", f"{models}:thread",
        "--n-trials", "3", "--confirm-seeds", "0", "--epochs", "1", "--study-name", "mine",
        "--storage", stores[0], "--tracking-uri", stores[1],
    ]  # fmt: skip
    result = cli(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "with the population engine" in result.stdout
    client, runs = trial_runs(stores[1], "mine")
    assert len(runs) == 3
    parent = client.search_runs([runs[0].info.experiment_id], "tags.`bnsearch.kind` = 'study'")[0]
    assert parent.data.params["network.model"] == f"{models}:thread"
    local = client.download_artifacts(parent.info.run_id, "model.txt", str(tmp_path))
    text = Path(local).read_text()
    assert "placement before:" in text and "BatchNormalization(momentum" in text
    shown = cli("model", "--show", f"{models}:thread", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "sites (2): " in shown.stdout and "engine: population" in shown.stdout
    assert "placement after:" not in shown.stdout  # the summary; every layer with --full
    full = cli("model", "--show", f"{models}:thread", "--full", cwd=tmp_path)
    assert "2 sites" in full.stdout and "placement after:" in full.stdout
    kept = cli("model", "--show", f"{models}:with_layer_norm", cwd=tmp_path)
    assert "LayerNormalization 'ln'" in kept.stdout
    refused = cli("model", "--show", f"{models}:no_site", cwd=tmp_path)
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1


# --- regression -------------------------------------------------------------------------


def _regression_csv(folder: Path) -> Path:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((240, 5))
    y = x @ np.array([1.0, -2.0, 0.5, 0.0, 1.5]) + 0.1 * rng.standard_normal(240) + 3.0
    path = folder / "reg.csv"
    header = "a,b,c,d,e,target"
    np.savetxt(path, np.column_stack([x, y]), delimiter=",", header=header, comments="")
    return path


def test_a_fractional_target_is_a_regression_under_auto_and_said_so(tmp_path):
    path = _regression_csv(tmp_path)
    data = load_dataset(str(path), "target")
    assert data.task == "regression" and data.n_classes == 1 and data.y.dtype == np.float32
    assert "--task classification" in data.task_note
    assert data.y_onehot.shape == (240, 1)
    scaled = load_dataset(str(path), "target", standardize=True, validation_split=0.2)
    train = scaled.y[:192]  # the target is standardised with the training rows too
    assert abs(float(train.mean())) < 1e-5 and float(train.std()) == pytest.approx(1, abs=1e-5)
    with pytest.raises(DataError, match="labels are fractional numbers.*--task regression"):
        load_dataset(str(path), "target", task="classification")
    assert load_dataset("sklearn:diabetes").task == "regression"
    assert load_dataset("sklearn:iris").task == "classification"
    assert load_dataset(str(path), "target", task="regression").task_note == ""  # asked


REGRESSION = NetworkSettings(epochs=3, hidden_units=(8, 6), activation="tanh")


REGRESSION_PLACEMENTS = ("none", "before", "after", "before_output", "input")


@pytest.fixture(scope="module")
def regression_trained(tmp_path_factory) -> tuple[Dataset, dict]:
    """The regression data and, per placement, its spec and what each engine made of it:
    one population of all five placements (members train independently, so each is the
    network trained alone) and one Keras-engine run of the five, shared by the cases."""
    folder = tmp_path_factory.mktemp("regression")
    data = load_dataset(str(_regression_csv(folder)), "target", standardize=True)
    specs = [
        TrialSpec(i, BNConfig(placement=p, dropout=0.0, learning_rate=0.01), 5)
        for i, p in enumerate(REGRESSION_PLACEMENTS)
    ]
    population = PopulationEngine(shuffle=False, jit_compile=False)
    results = population.train(specs, data, REGRESSION).results
    keras.backend.clear_session()
    # The Keras engine's runs are checked for completing with a finite val_loss, not epoch by
    # epoch (the cases compare the population with a model.fit of their own): one epoch does.
    keras_results = KerasEngine().train(specs, data, replace(REGRESSION, epochs=1)).results
    keras.backend.clear_session()
    return data, {
        spec.config.placement: (spec, result, keras_result)
        for spec, result, keras_result in zip(specs, results, keras_results, strict=True)
    }


@pytest.mark.trains
@pytest.mark.parametrize("placement", REGRESSION_PLACEMENTS)
def test_regression_trains_alike_on_both_engines(regression_trained, placement):
    data, trained = regression_trained
    spec, result, keras_result = trained[placement]
    assert result.spec == spec and keras_result.spec == spec
    assert result.state is TrialState.COMPLETE
    keras.backend.clear_session()
    model = build_model(spec.config, (5,), 1, REGRESSION, seed=spec.seed)
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    assert dense[-1].units == 1 and dense[-1].get_config()["activation"] == "linear"
    assert model.loss == "mean_squared_error"
    x_train, y_train, x_val, y_val = data.split(REGRESSION.validation_split)
    history = model.fit(
        x_train, y_train, batch_size=16, epochs=3, shuffle=False,
        validation_data=(x_val, y_val), verbose=0,
    ).history  # fmt: skip
    for metric in ("loss", "val_loss"):
        np.testing.assert_allclose(result.history[metric], history[metric], rtol=1e-4)
    assert keras_result.state is TrialState.COMPLETE
    assert np.isfinite(keras_result.history["val_loss"]).all()


@pytest.mark.trains
def test_a_regression_model_study_runs_on_both_engines_and_says_the_task(models, tmp_path, cli):
    path = _regression_csv(tmp_path)
    for engine in ("population", "keras"):
        result = cli(
            "study", "--data", str(path), "--target", "target", "--model",
            f"{models}:regressor", "--engine", engine, "--n-trials", "3", "--confirm-seeds",
            "0", "--epochs", "1", "--standardize", "--study-name", f"reg-{engine}",
            "--storage", f"sqlite:///{tmp_path / 'o.db'}",
            "--tracking-uri", f"sqlite:///{tmp_path / 'm.db'}", cwd=tmp_path,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert "task: regression" in result.stdout
        assert f"with the {engine} engine" in result.stdout
    refused = cli(
        "study", "--data", str(path), "--target", "target", "--model", f"{models}:thread",
        "--storage", f"sqlite:///{tmp_path / 'o.db'}", cwd=tmp_path,
    )  # fmt: skip
    assert refused.returncode == 2 and "takes rows of shape (14,)" in refused.stderr
    assert len(refused.stderr.splitlines()) == 1
