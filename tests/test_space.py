from __future__ import annotations

import keras_tuner
import optuna
import pytest

from bnsearch.errors import ConfigError
from bnsearch.trial import PLACEMENTS, BNConfig, FloatRange, SearchSpace


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"momentum": [0.5, 1.0]}, ["momentum", "value < 1", "high=1.0"]),
        ({"momentum": 1.2}, ["momentum", "< 1"]),
        ({"epsilon": [0.0, 1e-3]}, ["epsilon", "0 < value", "low=0.0"]),
        ({"epsilon": -1e-3}, ["epsilon"]),
        ({"dropout": [0.1, 1.0]}, ["dropout", "value < 1", "high=1.0"]),
        ({"learning_rate": [0.5, 0.1]}, ["learning_rate", "low <= high"]),
        ({"placement": ["before", "sideways"]}, ["sideways", "before_output"]),
        ({"placement": []}, ["placement"]),
        ({"momentun": 0.9}, ["momentun", "momentum"]),
        ({"use_bias": ["yes"]}, ["use_bias"]),
        ({"dropout": "a lot"}, ["dropout"]),
    ],
)
def test_nonsense_ranges_are_rejected_naming_the_parameter(overrides, words):
    with pytest.raises(ConfigError) as caught:
        SearchSpace.from_overrides(overrides)
    for word in words:
        assert word in str(caught.value)


def test_overrides_replace_only_the_named_ranges():
    space = SearchSpace.from_overrides(
        {"momentum": {"low": 0.9, "high": 0.99}, "dropout": 0.5, "placement": ["before", "after"]}
    )
    assert space.momentum == FloatRange(0.9, 0.99)
    assert space.dropout.fixed and space.dropout.low == 0.5
    assert space.placement == ("before", "after")
    assert space.learning_rate == SearchSpace().learning_rate


def test_fingerprint_changes_with_any_range():
    assert SearchSpace().fingerprint() == SearchSpace().fingerprint()
    changed = SearchSpace.from_overrides({"epsilon": [1e-5, 1e-3]})
    assert changed.fingerprint() != SearchSpace().fingerprint()


def test_bnconfig_rejects_unknown_placement_and_bad_values():
    with pytest.raises(ConfigError, match="placement"):
        BNConfig(placement="between")
    with pytest.raises(ConfigError, match="momentum"):
        BNConfig(momentum=1.0)
    with pytest.raises(ConfigError, match="epsilon"):
        BNConfig(epsilon=0.0)


def test_optuna_suggestions_stay_inside_the_space():
    space = SearchSpace.from_overrides({"placement": list(PLACEMENTS), "dropout": [0.1, 0.2]})
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    seen = set()
    for _ in range(40):
        trial = study.ask()
        config = space.suggest(trial)
        seen.add(config.placement)
        assert 0.1 <= config.dropout <= 0.2
        assert 0.5 <= config.momentum <= 0.999
        assert set(trial.params) == {
            "placement", "use_bias", "momentum", "epsilon", "dropout", "learning_rate",
        }  # fmt: skip
        study.tell(trial, 0.0)
    assert seen == set(PLACEMENTS)


def test_pinned_placement_is_not_suggested():
    trial = optuna.create_study().ask()
    config = SearchSpace().suggest(trial, placement="after")
    assert config.placement == "after"
    assert "placement" not in trial.params


def test_keras_tuner_translation_declares_the_same_ranges():
    space = SearchSpace.from_overrides({"learning_rate": [0.01, 0.1], "use_bias": [False]})
    hp = keras_tuner.HyperParameters()
    config = space.from_keras_tuner(hp)
    declared = {h.name: h for h in hp.space}
    assert set(declared) == {
        "placement", "use_bias", "momentum", "epsilon", "dropout", "learning_rate",
    }  # fmt: skip
    assert declared["learning_rate"].min_value == 0.01
    assert declared["learning_rate"].sampling == "log"
    assert list(declared["placement"].values) == ["none", "before", "after"]
    assert config.use_bias is False


def test_grid_spreads_points_over_log_ranges():
    grid = SearchSpace.from_overrides({"learning_rate": [0.001, 0.1]}).grid(3)
    assert grid["learning_rate"] == pytest.approx([0.001, 0.01, 0.1])
    assert grid["placement"] == ["none", "before", "after"]


def test_every_grid_point_lies_inside_its_range_both_ends_exact():
    space = SearchSpace()
    for name, points in space.grid(3).items():
        rng = getattr(space, name)
        if name in ("placement", "use_bias"):
            continue
        assert points[0] == rng.low and points[-1] == rng.high, (name, points)
        assert all(rng.low <= p <= rng.high for p in points), (name, points)


def test_activation_is_a_dimension_only_when_listed():
    plain = SearchSpace()
    searched = SearchSpace.from_overrides({"activation": ["tanh", "relu"]})
    assert "activation" not in plain.as_dict()  # older studies keep their fingerprint
    assert plain.fingerprint() != searched.fingerprint()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    seen = set()
    for _ in range(20):
        trial = study.ask()
        config = searched.suggest(trial)
        seen.add(config.activation)
        assert config.as_params()["activation"] == trial.params["activation"]
        study.tell(trial, 0.0)
    assert seen == {"tanh", "relu"}
    unsearched = plain.suggest(optuna.create_study().ask())
    assert unsearched.activation is None and "activation" not in unsearched.as_params()
    hp = keras_tuner.HyperParameters()
    searched.from_keras_tuner(hp)
    assert list(next(h for h in hp.space if h.name == "activation").values) == ["tanh", "relu"]
    assert searched.grid()["activation"] == ["tanh", "relu"]


def test_unknown_or_repeated_activations_are_refused():
    with pytest.raises(ConfigError, match="unknown activation 'swishy'"):
        SearchSpace.from_overrides({"activation": ["tanh", "swishy"]})
    with pytest.raises(ConfigError, match="twice"):
        SearchSpace.from_overrides({"activation": ["relu", "relu"]})
    with pytest.raises(ConfigError, match="unknown activation"):
        BNConfig(activation="softplusx")
