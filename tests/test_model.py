from __future__ import annotations

from dataclasses import replace

import keras
import numpy as np
import pytest

from bnsearch.errors import ConfigError
from bnsearch.networks import NetworkSettings, build_model, network_graph
from bnsearch.trial import BNConfig

CNN = NetworkSettings(family="cnn", conv_filters=(4, 8), hidden_units=(16,), activation="relu")


def _kinds(model) -> list[str]:
    names = {
        keras.layers.Dense: "Dense",
        keras.layers.BatchNormalization: "BN",
        keras.layers.Dropout: "Dropout",
        keras.layers.Conv2D: "Conv2D",
        keras.layers.MaxPooling2D: "Pool",
        keras.layers.Flatten: "Flatten",
        keras.layers.Reshape: "Reshape",
    }
    kinds = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.Activation):
            kinds.append(layer.get_config()["activation"])
        else:
            kinds.append(names[type(layer)])
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
def test_placement_puts_bn_in_the_right_place(placement, expected):
    model = build_model(BNConfig(placement=placement), 14, 2)
    assert _kinds(model) == expected.split()


def test_before_placement_puts_bn_between_dense_and_tanh():
    model = build_model(BNConfig(placement="before"), 14, 2, NetworkSettings())
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds[:3] == ["Dense", "BatchNormalization", "Activation"]


def test_bn_momentum_epsilon_and_dropout_rate_pass_through():
    config = BNConfig(placement="after", momentum=0.9, epsilon=1e-6, dropout=0.25)
    model = build_model(config, 14, 2)
    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(bns) == 2
    for bn in bns:
        assert bn.momentum == pytest.approx(0.9)
        assert bn.epsilon == pytest.approx(1e-6)
    rates = [layer.rate for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
    assert rates == [0.25, 0.25]


@pytest.mark.parametrize(
    ("placement", "biased"),
    [
        ("before", [False, False, True]),
        ("after", [True, True, True]),
        ("none", [True, True, True]),
        ("before_output", [False, False, False]),
    ],
)
def test_use_bias_false_drops_the_bias_only_where_dense_feeds_bn(placement, biased):
    model = build_model(BNConfig(placement=placement, use_bias=False), 14, 2)
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    assert [layer.use_bias for layer in dense] == biased


def test_network_settings_shape_the_model_and_training():
    network = NetworkSettings(hidden_units=(32, 16, 8), activation="relu")
    model = build_model(BNConfig(placement="before", learning_rate=0.05), 5, 3, network)
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    assert [layer.units for layer in dense] == [32, 16, 8, 3]
    assert model.loss == "categorical_crossentropy"
    assert build_model(BNConfig(), 5, 2).loss == "binary_crossentropy"
    lr_at = model.optimizer._learning_rate  # the InverseTimeDecay schedule itself
    assert float(lr_at(0)) == pytest.approx(0.05)
    assert float(lr_at(1_000_000)) == pytest.approx(0.05 / 2)  # 1 / (1 + 1e-6 * t)
    assert model.optimizer.nesterov and model.optimizer.momentum == pytest.approx(0.9)


def test_same_seed_gives_the_same_dense_weights_across_placements():
    before = build_model(BNConfig(placement="before"), 14, 2, seed=7)
    after = build_model(BNConfig(placement="after"), 14, 2, seed=7)
    other = build_model(BNConfig(placement="before"), 14, 2, seed=8)
    np.testing.assert_array_equal(
        before.get_layer("dense_1").kernel.numpy(), after.get_layer("dense_1").kernel.numpy()
    )
    assert not np.allclose(
        before.get_layer("dense_1").kernel.numpy(), other.get_layer("dense_1").kernel.numpy()
    )


def test_thread_uniform_initializer_stays_within_005():
    model = build_model(BNConfig(), 14, 2, NetworkSettings(initializer="uniform"))
    kernel = model.get_layer("dense_1").kernel.numpy()
    assert np.abs(kernel).max() <= 0.05


def test_deeper_mlp_applies_the_placement_to_every_hidden_layer():
    network = NetworkSettings(hidden_units=(12, 10, 6), activation="elu")
    model = build_model(BNConfig(placement="after"), 14, 2, network)
    assert " ".join(_kinds(model)) == (
        "Dense elu BN Dropout Dense elu BN Dropout Dense elu BN Dropout Dense softmax"
    )


def test_searched_activation_overrides_the_network_activation():
    config = BNConfig(placement="before", activation="relu")
    model = build_model(config, 14, 2, NetworkSettings(activation="tanh"))
    assert " ".join(_kinds(model)) == "Dense BN relu Dropout Dense BN relu Dropout Dense softmax"


@pytest.mark.parametrize(
    ("placement", "expected"),
    [
        ("none", "Conv2D relu Pool Conv2D relu Pool Flatten Dense relu Dropout Dense softmax"),
        (
            "before",
            "Conv2D BN relu Pool Conv2D BN relu Pool Flatten Dense BN relu Dropout Dense softmax",
        ),
        (
            "after",
            "Conv2D relu BN Pool Conv2D relu BN Pool Flatten Dense relu BN Dropout Dense softmax",
        ),
    ],
)
def test_cnn_places_bn_in_every_conv_and_dense_block(placement, expected):
    model = build_model(BNConfig(placement=placement), (8, 8, 1), 10, CNN)
    assert _kinds(model) == expected.split()
    assert model.output_shape == (None, 10)


def test_cnn_bn_normalises_per_channel_and_conv_feeding_bn_drops_its_bias():
    model = build_model(BNConfig(placement="before", use_bias=False), (8, 8, 1), 10, CNN)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [c.filters for c in convs] == [4, 8] and not any(c.use_bias for c in convs)
    assert all(c.padding == "same" and c.kernel_size == (3, 3) for c in convs)
    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    # channels last: one gamma per channel, statistics over batch, height and width
    assert [tuple(bn.gamma.shape) for bn in bns] == [(4,), (8,), (16,)]
    assert all(bn.axis == -1 for bn in bns)


def test_kernel_size_sizes_every_convolution_of_the_cnn_in_both_engines_forms():
    network = replace(CNN, kernel_size=5)
    model = build_model(BNConfig(placement="before"), (8, 8, 1), 10, network)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [c.kernel_size for c in convs] == [(5, 5), (5, 5)]
    graph = network_graph(network, (8, 8, 1), 10)  # what the population engine trains
    assert not isinstance(graph, str), graph
    kernels = [op.kernel_shape for op in graph.ops if len(op.kernel_shape) == 4]
    assert [k[:2] for k in kernels] == [(5, 5), (5, 5)], kernels


def test_cnn_accepts_grey_images_without_a_channel_axis():
    model = build_model(BNConfig(placement="after"), (8, 8), 10, CNN)
    assert _kinds(model)[0] == "Reshape" and model.output_shape == (None, 10)


def test_cnn_refuses_flat_rows_with_a_clear_error():
    with pytest.raises(ConfigError, match="image-shaped"):
        build_model(BNConfig(), 14, 2, CNN)


def test_mlp_network_fingerprint_does_not_name_the_cnn_settings():
    assert "family" not in NetworkSettings().as_params()
    assert NetworkSettings(family="cnn").as_params()["conv_filters"] == "16,32"
