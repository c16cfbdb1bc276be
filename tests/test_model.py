from __future__ import annotations

import keras
import numpy as np
import pytest

from bnsearch.model import NetworkSettings, build_model, layer_plan
from bnsearch.space import BNConfig


def _kinds(model) -> list[str]:
    names = {
        keras.layers.Dense: "Dense",
        keras.layers.BatchNormalization: "BN",
        keras.layers.Dropout: "Dropout",
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
    plan = layer_plan(BNConfig(placement="before"), NetworkSettings())
    kinds = [kind for kind, _ in plan]
    assert kinds[:3] == ["dense", "bn", "activation"]


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
