"""A ``--builder`` network on the population engine: read from the model it builds for
``none``, trained there only when it places BN by the ``--model`` rule under every probe
of the study's space, and then trained as Keras trains the builder's own model."""

from __future__ import annotations

import textwrap

import keras
import numpy as np
import pytest

from bnsearch.engines import PopulationEngine, engine_for, engine_notice
from bnsearch.errors import ConfigError
from bnsearch.networks import (
    NetworkSettings,
    build_model,
    network_graph,
    plan_of_model,
    rewrite_model,
)
from bnsearch.trial import PLACEMENTS, BNConfig, SearchSpace, TrialSpec, TrialState
from tests.test_engines import _close, _digit_images
from tests.test_graph_parity import train_in_one_population

BUILDERS = textwrap.dedent(
    """
    import keras
    from keras import layers
    from bnsearch.blocks import conv_block, dense_block


    def follows(config, input_shape, n_classes, seed):
        # Every placement by the rule: blocks at the sites, the trial's Dropout rate, an
        # input BN and a BN before the output's softmax where the placement asks for them.
        inputs = keras.Input(shape=input_shape)
        x = inputs
        if config.placement == "input":
            x = layers.BatchNormalization(momentum=config.momentum, epsilon=config.epsilon)(x)
        x = conv_block(x, 4, 3, config, activation="relu", name="conv")
        x = layers.MaxPooling2D(2, padding="same")(x)
        x = layers.Flatten()(x)
        x = dense_block(x, 8, config, activation="tanh", name="hidden")
        x = layers.Dropout(config.dropout)(x)
        if config.placement != "before_output":
            return keras.Model(inputs, layers.Dense(n_classes, activation="softmax")(x))
        x = layers.Dense(n_classes, use_bias=config.use_bias)(x)
        x = layers.BatchNormalization(momentum=config.momentum, epsilon=config.epsilon)(x)
        return keras.Model(inputs, layers.Activation("softmax")(x))


    def fixed_dropout(config, input_shape, n_classes, seed):
        inputs = keras.Input(shape=input_shape)
        x = layers.Flatten()(inputs)
        x = dense_block(x, 8, config, activation="relu", name="hidden")
        x = layers.Dropout(0.5, name="always_half")(x)
        return keras.Model(inputs, layers.Dense(n_classes, activation="softmax")(x))


    def own_momentum(config, input_shape, n_classes, seed):
        inputs = keras.Input(shape=input_shape)
        x = layers.Flatten()(inputs)
        x = layers.Dense(8, use_bias=config.use_bias or config.placement != "before")(x)
        if config.placement == "before":
            x = layers.BatchNormalization(momentum=0.5, name="mine")(x)
        x = layers.Activation("relu")(x)
        if config.placement == "after":
            x = layers.BatchNormalization(momentum=0.5, name="mine")(x)
        return keras.Model(inputs, layers.Dense(n_classes, activation="softmax")(x))


    def normed(config, input_shape, n_classes, seed):
        inputs = keras.Input(shape=input_shape)
        x = layers.Flatten()(inputs)
        x = dense_block(x, 8, config, activation="relu")
        x = layers.LayerNormalization(name="ln")(x)
        return keras.Model(inputs, layers.Dense(n_classes, activation="softmax")(x))
    """
)
EPOCHS = 2
# At learning rate 0.01 the `after` member (a BN over four ReLU channels) drifts under XLA
# from graph mode: 2e-4 apart after one epoch, 0.13 after three, while graph mode matches
# Keras; every other placement agrees within 2e-7. That is the mark of an ill-conditioned BN
# (a channel whose batch variance nears epsilon multiplies reordered float32 sums), not of
# a difference in maths. At 0.003 every placement agrees within 4e-7 over three epochs.
SETTING = {"use_bias": False, "momentum": 0.9, "epsilon": 1e-5, "learning_rate": 0.003}


@pytest.fixture(scope="module")
def builders(tmp_path_factory):
    folder = tmp_path_factory.mktemp("builders")
    (folder / "my_builders.py").write_text(BUILDERS)
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(folder))
        yield "my_builders"


def _network(module: str, name: str, **changes) -> NetworkSettings:
    return NetworkSettings(epochs=EPOCHS, builder=f"{module}:{name}", **changes)


def test_a_builder_that_follows_the_rule_is_read_into_the_graph_and_trains_here(builders):
    network = _network(builders, "follows")
    data = _digit_images(64)
    graph = network_graph(network, (8, 8, 1), 10)
    assert not isinstance(graph, str), graph
    assert [op.kind for op in graph.ops] == [
        "core",
        "max_pool",
        "flatten",
        "core",
        "dropout",
        "core",
    ]
    assert [graph.ops[i].role for i in graph.cores] == ["site", "site", "output"]
    every = SearchSpace(placement=PLACEMENTS, activation=("relu", "elu"))
    assert engine_for("population", network, dataset=data, space=every) == "population"
    assert engine_notice(network, data, every) is None


@pytest.mark.trains
@pytest.mark.parametrize(
    ("name", "space", "named"),
    [
        ("fixed_dropout", SearchSpace(), "'always_half': the builder's Dropout differs in rate"),
        ("own_momentum", SearchSpace(),
         "'mine': the builder's BatchNormalization differs in momentum"),
        # blocks alone place no output BN: `before_output` is where this builder departs.
        ("fixed_dropout", SearchSpace(placement=("before_output",)),
         "the rule BatchNormalization"),
        ("normed", SearchSpace(), "LayerNormalization 'ln'"),
    ],
)  # fmt: skip
def test_a_builder_that_departs_from_the_rule_trains_on_keras_and_the_study_says_where(
    builders, name, space, named
):
    network = _network(builders, name)
    data = _digit_images(64)
    assert engine_for("population", network, dataset=data, space=space) == "keras"
    notice = engine_notice(network, data, space)
    assert notice is not None and named in notice, notice
    assert "trains on the Keras engine" in notice and "\n" not in notice
    # The engine itself refuses to train such trials rather than train them wrong.
    specs = [TrialSpec(0, BNConfig(placement=space.placement[-1], dropout=0.25), 1)]
    with pytest.raises(ConfigError, match="no form for .*; use --engine keras"):
        PopulationEngine().train(specs, data, network)


@pytest.fixture(scope="module")
def population_run(builders):
    network = _network(builders, "follows")
    data = _digit_images(243)
    configs = [BNConfig(placement=p, dropout=0.0, **SETTING) for p in PLACEMENTS]
    # Graph mode only: XLA changes only the convolutions' form, and this network's one
    # convolution (3x3 'same', stride 1, on 8x8 images) is checked under XLA by the CNN
    # family's parity test and test_graph_parity's pooled model.
    return train_in_one_population(network, data, configs, first_seed=70, xla=False)


@pytest.mark.slow
def test_population_trains_a_builder_network_as_keras_fits_the_builders_own_model(
    population_run, subtests
):
    """Keras fits the model the builder builds (its own layers and names), started from the
    weights the population drew by the rule (the rewrite's, copied layer by layer): every
    member of the one population, trained once, each a subtest of its own."""
    for member, spec in enumerate(population_run[2]):
        with subtests.test(placement=spec.config.placement):
            _member_trains_as_keras_fits_the_builders_own_model(population_run, member)


def _member_trains_as_keras_fits_the_builders_own_model(population_run, member):
    network, data, specs, results, models, _ = population_run
    spec = specs[member]
    keras.backend.clear_session()
    shape = data.x.shape[1:]
    theirs = build_model(spec.config, shape, data.n_classes, network, seed=spec.seed)
    plan = plan_of_model("none", build_model(BNConfig("none"), shape, 10, network, compile=False))
    start = rewrite_model(plan, spec.config, spec.seed)
    for rule_layer, layer in zip(start.layers, theirs.layers, strict=True):
        assert type(rule_layer) is type(layer)
        layer.set_weights(rule_layer.get_weights())
    x_train, y_train, x_val, y_val = data.split(network.validation_split)
    history = theirs.fit(
        x_train, y_train, batch_size=16, epochs=EPOCHS, shuffle=False,
        validation_data=(x_val, y_val), verbose=0,
    ).history  # fmt: skip
    ours = models[member]
    assert [type(la) for la in ours.layers] == [type(la) for la in theirs.layers]
    for their_layer, our_layer in zip(theirs.layers, ours.layers, strict=True):
        for reference, mine in zip(their_layer.weights, our_layer.weights, strict=True):
            assert _close(reference.numpy(), mine.numpy()) < 1e-4, (their_layer.name, mine.name)
    assert results[member].state is TrialState.COMPLETE
    for metric in ("val_loss", "loss"):
        np.testing.assert_allclose(results[member].history[metric], history[metric], rtol=1e-4)
