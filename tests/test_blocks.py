"""The public building blocks for your own network, and studies that use them."""

from __future__ import annotations

import textwrap

import keras
import pytest
from mlflow.tracking import MlflowClient

from bnsearch.config import StudyConfig
from bnsearch.engines import resolve
from bnsearch.errors import ConfigError
from bnsearch.networks import NetworkSettings, build_model
from bnsearch.networks.blocks import conv_block, dense_block
from bnsearch.study import run_study
from bnsearch.trial import BNConfig


def _layer_kinds(model) -> list[str]:
    kinds = []
    for layer in model.layers[1:]:
        if isinstance(layer, keras.layers.Activation):
            kinds.append(layer.get_config()["activation"])
        else:
            kinds.append(type(layer).__name__)
    return kinds


@pytest.mark.parametrize(
    ("placement", "expected", "bias"),
    [
        ("none", ["Dense", "relu"], True),
        ("before", ["Dense", "BatchNormalization", "relu"], False),
        ("before_output", ["Dense", "BatchNormalization", "relu"], False),
        ("after", ["Dense", "relu", "BatchNormalization"], True),
        ("input", ["Dense", "relu"], True),
    ],
)
def test_dense_block_places_bn_by_the_config(placement, expected, bias):
    config = BNConfig(placement=placement, use_bias=False, momentum=0.9, epsilon=1e-5)
    inputs = keras.Input(shape=(5,))
    model = keras.Model(inputs, dense_block(inputs, 7, config, activation="relu", name="b"))
    assert _layer_kinds(model) == expected
    assert model.get_layer("b").use_bias is bias  # a bias only where no BN follows directly
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            assert layer.momentum == pytest.approx(0.9) and layer.epsilon == pytest.approx(1e-5)


def test_conv_block_normalises_per_channel_and_honours_a_searched_activation():
    config = BNConfig(placement="before", use_bias=False, activation="elu")
    inputs = keras.Input(shape=(6, 6, 2))
    model = keras.Model(inputs, conv_block(inputs, 5, 3, config, activation="relu", name="c"))
    assert _layer_kinds(model) == ["Conv2D", "BatchNormalization", "elu"]
    assert model.get_layer("c").padding == "same" and not model.get_layer("c").use_bias
    assert tuple(model.get_layer("c_bn").gamma.shape) == (5,)
    assert model.output_shape == (None, 6, 6, 5)


BUILDER = textwrap.dedent(
    """
    import keras
    from bnsearch.blocks import dense_block

    def build(config, input_shape, n_classes, seed):
        inputs = keras.Input(shape=input_shape)
        x = dense_block(inputs, 6, config, activation="relu", name="mine_1")
        x = dense_block(x, 5, config, activation="relu", name="mine_2")
        return keras.Model(inputs, keras.layers.Dense(n_classes, activation="softmax")(x))

    def half_dropout(config, input_shape, n_classes, seed):  # ignores the trial's rate
        inputs = keras.Input(shape=input_shape)
        x = dense_block(inputs, 6, config, activation="relu", name="mine_1")
        x = keras.layers.Dropout(0.5, name="half")(x)
        return keras.Model(inputs, keras.layers.Dense(n_classes, activation="softmax")(x))

    def wrong_output(config, input_shape, n_classes, seed):
        inputs = keras.Input(shape=input_shape)
        return keras.Model(inputs, keras.layers.Dense(n_classes + 1)(inputs))
    """
)


@pytest.fixture
def builder_module(tmp_path, monkeypatch):
    (tmp_path / "my_nets.py").write_text(BUILDER)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "my_nets"


@pytest.mark.trains
def test_a_study_trains_your_own_network_on_the_population_engine_when_it_follows_the_rule(
    tiny_csv, stores, builder_module
):
    import io

    from bnsearch.study import load_study_dataset

    network = NetworkSettings(epochs=2, builder=f"{builder_module}:build")
    config = StudyConfig(
        study_name="own", data=str(tiny_csv), target="label", n_trials=3, confirm_seeds=0,
        network=network, verbose=True, **stores,
    )  # fmt: skip
    assert resolve(config, load_study_dataset(config)).engine == "population"
    out = io.StringIO()
    outcome = run_study(config, stream=out)
    assert "notice: the population engine has no form" not in out.getvalue()
    assert len(outcome.new_results) == 3
    assert all(r.state.value == "COMPLETE" for r in outcome.new_results)
    assert {r.engine for r in outcome.new_results} == {"population"}
    client = MlflowClient(stores["tracking_uri"])
    runs = client.search_runs([client.get_experiment_by_name("own").experiment_id])
    parent = next(r for r in runs if r.data.tags.get("bnsearch.kind") == "study")
    assert parent.data.params["network.builder"] == f"{builder_module}:build"
    model = build_model(BNConfig(placement="after"), (14,), 2, network)
    assert "mine_1_bn" in [layer.name for layer in model.layers]


@pytest.mark.trains
def test_a_builder_that_departs_from_the_rule_trains_on_the_keras_engine_named(
    tiny_csv, stores, builder_module
):
    import io

    # One epoch: what is checked is the engine chosen and why, and that its trials complete.
    network = NetworkSettings(epochs=1, builder=f"{builder_module}:half_dropout")
    config = StudyConfig(
        study_name="half", data=str(tiny_csv), target="label", n_trials=3, confirm_seeds=0,
        network=network, verbose=True, **stores,
    )  # fmt: skip
    out = io.StringIO()
    outcome = run_study(config, stream=out)
    assert (
        "notice: the population engine has no form for a network from `builder` that does not "
        "place BN by the --model rule" in out.getvalue()
    )
    assert "'half': the builder's Dropout differs in rate" in out.getvalue()
    assert {r.engine for r in outcome.new_results} == {"keras"}
    assert all(r.state.value == "COMPLETE" for r in outcome.new_results)


def test_a_builder_that_cannot_be_used_is_refused_clearly(builder_module):
    with pytest.raises(ConfigError, match="cannot import the network builder"):
        build_model(BNConfig(), (14,), 2, NetworkSettings(builder="no_such_module:build"))
    with pytest.raises(ConfigError, match="has no function"):
        build_model(BNConfig(), (14,), 2, NetworkSettings(builder=f"{builder_module}:nothing"))
    with pytest.raises(ConfigError, match="output shape"):
        build_model(BNConfig(), (14,), 2, NetworkSettings(builder=f"{builder_module}:wrong_output"))
    with pytest.raises(ConfigError, match="module:function"):
        NetworkSettings(builder="not a builder")
