"""The population engine against the Keras reference built by the one model builder."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from bnsearch.data import Dataset, load_dataset, make_synthetic
from bnsearch.engines import KerasEngine, PopulationEngine
from bnsearch.engines._population._graph import member_rank
from bnsearch.engines._population._ops import hash_uniform
from bnsearch.networks import NetworkSettings, build_model
from bnsearch.trial import PLACEMENTS, BNConfig, TrialSpec, TrialState

EPOCHS = 3
NETWORK = NetworkSettings(epochs=EPOCHS, hidden_units=(16, 8))
# Two different momentum/epsilon/learning-rate settings share one population: the thread's
# and Keras' BN defaults. (With lr 0.02 and seed 17, before_output hit one ill-conditioned
# step in epoch 2 that amplified float32 rounding to 1.3e-4 and then stayed flat; a
# one-off amplification of rounding, not drift, but over this test's 1e-4 bound.)
SETTINGS = [(True, 0.9, 1e-6, 0.1), (False, 0.99, 1e-3, 0.01)]
# A convolution's float32 sums are split among threads as the machine's load allows, so the
# order of additions, and with it the rounding, changes from run to run; over the steps it
# grows. On this project's busy 2-core CI machine conv-net weights reached 1.1e-4 to 1.7e-4
# of Keras' (a 4-channel BN beta, a pooled model's kernel) where a quiet run stays under
# 1e-4; a wrong form (padding, stride, a mask) is off by 1e-2 or more. Losses keep 1e-4.
CONV_WEIGHTS_BOUND = 5e-4


def _close(reference: np.ndarray, candidate: np.ndarray) -> float:
    """Relative error of a tensor, ``||candidate - reference|| / ||reference||`` (L2 norms).

    The reference norm has a floor of 1e-2: a Dense bias that feeds a BN gets no real
    gradient (BN removes the mean), so it only collects float32 rounding noise of ~1e-7.
    """
    scale = max(float(np.linalg.norm(reference)), 1e-2)
    return float(np.linalg.norm(reference - candidate)) / scale


def _train_for_parity(data, settings, network, first_seed, xla=True):
    """Every placement x ``settings`` in ONE population, dropout off, in graph mode (an MLP's
    float32 operations are Keras'; a convolution's gradients are forward convolutions) and,
    if ``xla``, under XLA (which reorders float arithmetic; its agreement is checked
    separately; its results None without it)."""
    configs = [
        BNConfig(placement=p, dropout=0.0, use_bias=b, momentum=m, epsilon=e, learning_rate=lr)
        for p in PLACEMENTS
        for b, m, e, lr in settings
    ]
    specs = [TrialSpec(i, c, first_seed + i) for i, c in enumerate(configs)]
    specs.sort(key=member_rank)  # the engine's member order: its member p is spec p
    engine = PopulationEngine(shuffle=False, jit_compile=False)
    results = engine.train(specs, data, network).results
    xla_results = None
    if xla:
        under_xla = PopulationEngine(shuffle=False, jit_compile=True)
        xla_results = under_xla.train(specs, data, network).results
    return data, specs, results, engine.last_population, xla_results


@pytest.fixture(scope="module")
def parity_run():
    # 403 rows: 322 training rows = 20 full batches of 16 plus a partial batch of 2.
    return _train_for_parity(make_synthetic(403, seed=2).standardize(0.2), SETTINGS, NETWORK, 10)


def _bn_slot(name: str) -> str:
    """The population's BN slot of the built-in MLP's BN layer ``name``: one slot per site
    (named by its Dense), before or after the activation."""
    if name in ("input_bn", "output_bn"):
        return name
    return f"dense_{name.split('_')[1]}"


@pytest.mark.trains
def test_population_matches_keras_weights_moving_stats_and_val_loss(parity_run, subtests):
    """Every member of the one population, trained once, each checked against Keras as a
    subtest of its own."""
    for member, spec in enumerate(parity_run[1]):
        with subtests.test(member=member, placement=spec.config.placement):
            _population_matches_keras_weights_moving_stats_and_val_loss(parity_run, member)


def _population_matches_keras_weights_moving_stats_and_val_loss(parity_run, member):
    data, specs, results, population, xla_results = parity_run
    spec = specs[member]
    keras.backend.clear_session()
    model = build_model(spec.config, data.n_features, data.n_classes, NETWORK, seed=spec.seed)
    x_train, y_train, x_val, y_val = data.split(NETWORK.validation_split)
    history = model.fit(
        x_train, y_train, batch_size=16, epochs=EPOCHS, shuffle=False,
        validation_data=(x_val, y_val), verbose=0,
    ).history  # fmt: skip
    weights = population.member_weights(member)
    for name in ["dense_1", "dense_2", "output_dense"]:
        layer = model.get_layer(name)
        assert _close(layer.kernel.numpy(), weights[f"kernel_{name}"]) < 1e-4, name
        if layer.use_bias:
            assert _close(layer.bias.numpy(), weights[f"bias_{name}"]) < 1e-4, name
        else:
            assert not weights[f"bias_{name}"].any(), "a masked bias must stay zero"
    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert bns or spec.config.placement == "none"
    for layer in bns:
        slot = _bn_slot(layer.name)
        for variable, key in (
            (layer.gamma, "gamma"), (layer.beta, "beta"),
            (layer.moving_mean, "moving_mean"), (layer.moving_variance, "moving_var"),
        ):  # fmt: skip
            assert _close(variable.numpy(), weights[f"{key}_{slot}"]) < 1e-4, (layer.name, key)
    result = results[member]
    assert result.state is TrialState.COMPLETE
    for metric in ("val_loss", "loss"):
        np.testing.assert_allclose(result.history[metric], history[metric], rtol=1e-4)
    np.testing.assert_allclose(result.history["accuracy"], history["accuracy"], atol=1e-6)
    # Under XLA the per-epoch metrics still agree with Keras.
    np.testing.assert_allclose(
        xla_results[member].history["val_loss"], history["val_loss"], rtol=1e-4
    )
    np.testing.assert_allclose(xla_results[member].history["loss"], history["loss"], rtol=1e-4)


# MLP variants: a deeper, narrowing network, and activations other than tanh searched per
# trial (BNConfig.activation), all trained in ONE call so the engine's per-activation
# populations are exercised too; with a batch size and a validation split other than the
# defaults (302 training rows: 25 batches of 12 and one of 2), which the engine must honour.
VARIANT_NETWORK = NetworkSettings(
    epochs=EPOCHS, hidden_units=(12, 10, 6), activation="tanh", batch_size=12,
    validation_split=0.25,
)  # fmt: skip
VARIANTS = [
    BNConfig(placement=p, activation=a, dropout=0.0, momentum=0.9, epsilon=1e-5, learning_rate=lr)
    for p in ("none", "before", "after")
    for a, lr in (("relu", 0.05), ("elu", 0.05), ("sigmoid", 0.1))
]


@pytest.fixture(scope="module")
def variant_run():
    data = make_synthetic(403, seed=4).standardize(0.2)
    specs = [TrialSpec(i, c, 40 + i) for i, c in enumerate(VARIANTS)]
    graph = PopulationEngine(shuffle=False, jit_compile=False).train(specs, data, VARIANT_NETWORK)
    xla = PopulationEngine(shuffle=False, jit_compile=True).train(specs, data, VARIANT_NETWORK)
    graph, xla = graph.results, xla.results
    return data, specs, graph, xla


@pytest.mark.slow
def test_population_matches_keras_on_deeper_mlps_with_other_activations(variant_run, subtests):
    """Every member of the one population, trained once, each checked against Keras as a
    subtest of its own."""
    for member, spec in enumerate(variant_run[1]):
        with subtests.test(member=member, placement=spec.config.placement):
            _population_matches_keras_on_deeper_mlps_with_other_activations(variant_run, member)


def _population_matches_keras_on_deeper_mlps_with_other_activations(variant_run, member):
    data, specs, graph, xla = variant_run
    spec = specs[member]
    keras.backend.clear_session()
    model = build_model(spec.config, data.n_features, data.n_classes, VARIANT_NETWORK, spec.seed)
    assert len([la for la in model.layers if isinstance(la, keras.layers.Dense)]) == 4
    x_train, y_train, x_val, y_val = data.split(VARIANT_NETWORK.validation_split)
    history = model.fit(
        x_train, y_train, batch_size=12, epochs=EPOCHS, shuffle=False,
        validation_data=(x_val, y_val), verbose=0,
    ).history  # fmt: skip
    assert len(x_train) == 302
    for results in (graph, xla):
        assert results[member].state is TrialState.COMPLETE
        assert results[member].spec.number == spec.number  # results come back in order
        for metric in ("val_loss", "loss"):
            np.testing.assert_allclose(results[member].history[metric], history[metric], rtol=1e-4)


def test_dropout_keeps_the_expected_fraction_and_scale_per_member():
    rates = tf.constant([0.0, 0.2, 0.5, 0.7], tf.float32)[:, None, None]
    seeds = tf.constant([1, 2, 3, 4], tf.int64)
    u = hash_uniform(seeds, tf.constant(5, tf.int64), tf.constant([4, 256, 64]))
    keep = tf.cast(u >= rates, tf.float32)
    kept_fraction = tf.reduce_mean(keep, axis=[1, 2]).numpy()
    np.testing.assert_allclose(kept_fraction, [1.0, 0.8, 0.5, 0.3], atol=0.01)
    scaled = tf.reduce_mean(keep / (1.0 - rates), axis=[1, 2]).numpy()
    np.testing.assert_allclose(scaled, 1.0, atol=0.03)  # inverted dropout keeps the mean
    again = hash_uniform(seeds, tf.constant(5, tf.int64), tf.constant([4, 256, 64]))
    np.testing.assert_array_equal(u.numpy(), again.numpy())
    other_step = hash_uniform(seeds, tf.constant(6, tf.int64), tf.constant([4, 256, 64]))
    assert not np.array_equal(u.numpy(), other_step.numpy())
    assert float(tf.reduce_min(u)) >= 0.0 and float(tf.reduce_max(u)) < 1.0


@pytest.mark.trains
def test_one_members_nan_does_not_reach_the_others():
    data = make_synthetic(200, seed=1).standardize(0.2)
    network = NetworkSettings(epochs=2, hidden_units=(8, 8))
    good = TrialSpec(0, BNConfig(placement="before", learning_rate=0.05), seed=5)
    bad = TrialSpec(1, BNConfig(placement="none", learning_rate=1e38), seed=6)
    alone = PopulationEngine().train([good], data, network).results[0]
    together = PopulationEngine().train([good, bad], data, network).results
    assert together[1].state is TrialState.FAILED and "loss became" in together[1].fail_reason
    assert together[0].state is TrialState.COMPLETE
    # A member's result does not depend on who shares its population.
    np.testing.assert_allclose(
        together[0].history["val_loss"], alone.history["val_loss"], rtol=1e-5
    )


@pytest.mark.trains
def test_pruned_member_stops_and_the_rest_finish():
    data = make_synthetic(200, seed=1).standardize(0.2)
    network = NetworkSettings(epochs=4, hidden_units=(8, 8))
    specs = [TrialSpec(i, BNConfig(placement=p), seed=i) for i, p in enumerate(PLACEMENTS)]
    seen: list[tuple[int, int]] = []

    def prune_member_two_after_epoch_one(index: int, epoch: int, metrics: dict) -> bool:
        seen.append((index, epoch))
        assert all(math.isfinite(v) for v in metrics.values())
        return index == 2 and epoch == 1

    results = (
        PopulationEngine().train(specs, data, network, prune_member_two_after_epoch_one).results
    )
    assert results[2].state is TrialState.PRUNED and results[2].epochs_trained == 2
    assert (2, 2) not in seen
    assert all(r.epochs_trained == 4 for i, r in enumerate(results) if i != 2)


def test_xla_is_the_default_only_for_a_population_that_trains_enough_steps_to_repay_it():
    from bnsearch.engines._population._engine import XLA_MIN_STEPS
    from bnsearch.networks import network_graph

    graph = network_graph(NetworkSettings(), (14,), 2)  # the thread's network
    default = PopulationEngine()
    assert not default.xla_for(graph, XLA_MIN_STEPS - 1)
    assert default.xla_for(graph, XLA_MIN_STEPS) and default.xla_for(graph)
    assert PopulationEngine(jit_compile=True).xla_for(graph, 1)
    assert not PopulationEngine(jit_compile=False).xla_for(graph, 10 * XLA_MIN_STEPS)


@pytest.mark.trains
def test_large_populations_are_chunked_in_order():
    data = make_synthetic(120, seed=1).standardize(0.2)
    network = NetworkSettings(epochs=1, hidden_units=(4,))
    specs = [TrialSpec(i, BNConfig(placement=PLACEMENTS[i % 5]), seed=i) for i in range(7)]
    results = PopulationEngine(max_population=3).train(specs, data, network).results
    assert [r.spec.number for r in results] == list(range(7))
    assert all(r.state is TrialState.COMPLETE for r in results)


@pytest.mark.trains
def test_keras_engine_records_divergence_as_failed():
    data = make_synthetic(120, seed=1).standardize(0.2)
    spec = TrialSpec(0, BNConfig(placement="none", learning_rate=1e38), seed=1)
    network = NetworkSettings(epochs=2, hidden_units=(4,))
    result = KerasEngine().train([spec], data, network).results[0]
    assert result.state is TrialState.FAILED and "loss became" in result.fail_reason


def test_bench_counts_a_networks_training_arithmetic_by_hand():
    """``bench``'s floor line: each kernel's multiply-adds at its output positions, six FLOP
    each (forward, input and kernel gradient); biases and BN are not counted."""
    from bnsearch.bench._engines import training_flops

    model = keras.Sequential(
        [keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, padding="same")]
        + [keras.layers.DepthwiseConv2D(3, padding="same"), keras.layers.BatchNormalization()]
        + [keras.layers.Flatten(), keras.layers.Dense(10)]
    )
    conv, depthwise, dense = 3 * 3 * 1 * 4 * 64, 3 * 3 * 4 * 64, 256 * 10
    assert training_flops(model) == 6 * (conv + depthwise + dense)


def test_a_graph_mode_population_takes_its_members_grouped_by_placement():
    """The engine sorts a chunk's trials by placement (MEMBER_ORDER): a graph-mode population
    handed them in another order refuses them rather than normalise the wrong members."""
    from bnsearch.engines import Population, SlotUse

    data = make_synthetic(40, seed=0).standardize(0.2)
    population = Population(4, data, NetworkSettings(hidden_units=(4,)), False, SlotUse())
    specs = [TrialSpec(i, BNConfig(placement=p), seed=i) for i, p in enumerate(("none", "after"))]
    with pytest.raises(ValueError, match="PopulationEngine sorts them"):
        population.load(specs)
    population.load(sorted(specs, key=member_rank))  # after, then none (and its two copies)
    assert population.starts.numpy().tolist() == [0, 0, 0, 1, 1]


@pytest.mark.trains
def test_paired_members_with_one_seed_start_from_the_same_dense_weights():
    data = make_synthetic(120, seed=1).standardize(0.2)
    specs = [TrialSpec(i, BNConfig(placement=p), seed=42) for i, p in enumerate(PLACEMENTS)]
    engine = PopulationEngine()
    engine.train(specs, data, NetworkSettings(epochs=1, hidden_units=(4,)))
    population = engine.last_population
    population.load(sorted(specs, key=member_rank))  # as the engine orders them
    first = population.member_weights(0)["kernel_dense_1"]
    for member in range(1, len(specs)):
        np.testing.assert_array_equal(population.member_weights(member)["kernel_dense_1"], first)


# The CNN family: two conv stages and a dense head on 8x8 digit images, every placement x
# both SETTINGS in ONE population, dropout off, against Keras' Conv2D/BN/MaxPooling2D.
CNN_NETWORK = NetworkSettings(
    epochs=2, family="cnn", conv_filters=(4, 6), kernel_size=3, hidden_units=(8,),
    activation="tanh", initializer="he_uniform",
)  # fmt: skip
# As SETTINGS with a smaller first learning rate and epsilon 1e-5: at lr 0.1 with momentum 0.9,
# or with a BN epsilon of 1e-6 on a nearly saturated channel, this conv net
# trains at the edge of stability, where any float32 rounding difference grows ~10x a step.
CNN_SETTINGS = [(True, 0.9, 1e-5, 0.02), (False, 0.99, 1e-3, 0.01)]


def _digit_images(n_rows: int) -> Dataset:
    """Digit images scaled to [0, 1] plus a little noise.

    Standardised per pixel, the rarely-inked border pixels reach values near 30, which
    saturate units and leave some channels a tiny batch variance: an ill-conditioned BN
    that amplifies float32 rounding past 1e-4. Raw digits have 17 grey levels, so max
    pooling meets near-ties whose winner a rounding difference can flip (a discrete jump in
    the gradient); the noise makes every window's maximum clear.
    """
    digits = load_dataset("sklearn:digits", images=True)
    noise = np.random.default_rng(0).uniform(0.0, 0.1, digits.x[:n_rows].shape)
    x = (digits.x[:n_rows] / 16.0 + noise).astype(np.float32)
    return Dataset(digits.name, x, digits.y[:n_rows], digits.class_names)


@pytest.fixture(scope="module")
def cnn_parity_run():
    return _train_for_parity(_digit_images(403), CNN_SETTINGS, CNN_NETWORK, 70)


@pytest.mark.trains
def test_population_cnn_matches_keras_conv_bn_and_pooling(cnn_parity_run, subtests):
    """Every member of the one population, trained once, each checked against Keras as a
    subtest of its own."""
    for member, spec in enumerate(cnn_parity_run[1]):
        with subtests.test(member=member, placement=spec.config.placement):
            _population_cnn_matches_keras_conv_bn_and_pooling(cnn_parity_run, member)


def _population_cnn_matches_keras_conv_bn_and_pooling(cnn_parity_run, member):
    data, specs, results, population, xla_results = cnn_parity_run
    spec = specs[member]
    keras.backend.clear_session()
    model = build_model(spec.config, data.x.shape[1:], data.n_classes, CNN_NETWORK, spec.seed)
    x_train, y_train, x_val, y_val = data.split(CNN_NETWORK.validation_split)
    history = model.fit(
        x_train, y_train, batch_size=16, epochs=CNN_NETWORK.epochs, shuffle=False,
        validation_data=(x_val, y_val), verbose=0,
    ).history  # fmt: skip
    weights = population.member_weights(member)
    for name in ("conv_1", "conv_2", "dense_1", "output_dense"):
        layer, key = model.get_layer(name), name
        assert _close(layer.kernel.numpy(), weights[f"kernel_{key}"]) < CONV_WEIGHTS_BOUND, (
            name,
            "kernel",
        )
        feeds_bn = spec.config.placement in ("before", "before_output") and name != "output_dense"
        if layer.use_bias and feeds_bn:
            # BN removes the bias' effect: its true gradient is zero and both sides hold only
            # float32 rounding noise, summed over batch x height x width (1,024 values).
            np.testing.assert_allclose(layer.bias.numpy(), weights[f"bias_{key}"], atol=1e-4)
        elif layer.use_bias:
            # A conv bias sums the gradients of 1,024 positions per step, and under `after`
            # the BN that follows the activation cancels most of its effect (a nearly flat
            # direction that collects rounding): elementwise 1e-4 relative or 5e-5 absolute
            # (measured: at most 2.7e-5 on values of about 0.1).
            np.testing.assert_allclose(
                layer.bias.numpy(), weights[f"bias_{key}"], rtol=1e-4, atol=5e-5
            )
        else:
            assert not weights[f"bias_{key}"].any(), "a masked bias must stay zero"
    slots = {"input_bn": "input_bn", "conv_bn_1": "conv_1", "conv_bn_2": "conv_2"}
    slots |= {"bn_1": "dense_1", "output_bn": "output_bn"}
    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert bns or spec.config.placement == "none"
    for layer in bns:
        slot = slots[layer.name]
        for variable, key in (
            (layer.gamma, "gamma"), (layer.beta, "beta"),
            (layer.moving_mean, "moving_mean"), (layer.moving_variance, "moving_var"),
        ):  # fmt: skip
            assert _close(variable.numpy(), weights[f"{key}_{slot}"]) < CONV_WEIGHTS_BOUND, (
                layer.name,
                key,
            )
    assert results[member].state is TrialState.COMPLETE
    for metric in ("val_loss", "loss"):
        np.testing.assert_allclose(results[member].history[metric], history[metric], rtol=1e-4)
        np.testing.assert_allclose(xla_results[member].history[metric], history[metric], rtol=1e-4)


@pytest.mark.parametrize("shape", [(3, 8, 8, 2), (2, 5, 3, 4), (1, 1, 1, 1)])
def test_population_max_pooling_matches_keras_same_pooling_on_even_and_odd_images(shape):
    from bnsearch.engines._population._ops import max_pool_2x2

    images = tf.random.stateless_normal(shape, seed=[1, 2])
    expected = keras.layers.MaxPooling2D(2, padding="same")(images)
    pooled = max_pool_2x2(images, shape[1], shape[2])
    np.testing.assert_array_equal(pooled.numpy(), expected.numpy())


# A --model network: the thread's network (16-8 here) written in plain Keras and saved as a
# .keras file. Its rewrite is the built-in MLP, so the population engine trains it; checked
# against Keras' fit of the rewritten model itself, every placement x SETTINGS in ONE
# population, as the family's parity test. In graph mode only: on the same data, settings
# and seeds the file's population computes the built-in MLP's numbers exactly (graph mode
# and XLA alike), and XLA changes no op of an MLP, so parity_run's XLA run checks them.
@pytest.fixture(scope="module")
def model_parity_run(tmp_path_factory):
    layers = keras.layers
    path = tmp_path_factory.mktemp("model") / "thread.keras"
    keras.Sequential(
        [keras.Input((14,)),
         layers.Dense(16), layers.Activation("tanh"), layers.Dropout(0.5),
         layers.Dense(8), layers.Activation("tanh"), layers.Dropout(0.5),
         layers.Dense(2), layers.Activation("softmax")]
    ).save(path)  # fmt: skip
    network = NetworkSettings(epochs=EPOCHS, model=str(path))
    data = make_synthetic(403, seed=2).standardize(0.2)
    return (*_train_for_parity(data, SETTINGS, network, 10, xla=False), network)


@pytest.mark.trains
def test_population_matches_keras_on_a_model_file(model_parity_run, subtests):
    """Every member of the one population, trained once, each checked against Keras as a
    subtest of its own."""
    for member, spec in enumerate(model_parity_run[1]):
        with subtests.test(member=member, placement=spec.config.placement):
            _population_matches_keras_on_a_model_file(model_parity_run, member)


def _population_matches_keras_on_a_model_file(model_parity_run, member):
    data, specs, results, population, _, network = model_parity_run
    spec = specs[member]
    keras.backend.clear_session()
    model = build_model(spec.config, data.n_features, data.n_classes, network, seed=spec.seed)
    x_train, y_train, x_val, y_val = data.split(network.validation_split)
    history = model.fit(
        x_train, y_train, batch_size=16, epochs=EPOCHS, shuffle=False,
        validation_data=(x_val, y_val), verbose=0,
    ).history  # fmt: skip
    weights = population.member_weights(member)
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    for layer in dense:  # the rewrite keeps the model's layer names
        assert _close(layer.kernel.numpy(), weights[f"kernel_{layer.name}"]) < 1e-4, layer.name
        if layer.use_bias:
            assert _close(layer.bias.numpy(), weights[f"bias_{layer.name}"]) < 1e-4, layer.name
        else:
            assert not weights[f"bias_{layer.name}"].any(), "a masked bias must stay zero"
    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    placement = spec.config.placement
    sites = [dense[0].name, dense[1].name]
    slots = {"none": [], "input": ["input_bn"], "before": sites, "after": sites}
    slots["before_output"] = [*sites, "output_bn"]
    assert len(bns) == len(slots[placement])
    for layer, slot in zip(bns, slots[placement], strict=True):
        for variable, key in (
            (layer.gamma, "gamma"), (layer.beta, "beta"),
            (layer.moving_mean, "moving_mean"), (layer.moving_variance, "moving_var"),
        ):  # fmt: skip
            assert _close(variable.numpy(), weights[f"{key}_{slot}"]) < 1e-4, (layer.name, key)
    assert results[member].state is TrialState.COMPLETE
    for metric in ("val_loss", "loss"):
        np.testing.assert_allclose(results[member].history[metric], history[metric], rtol=1e-4)
    np.testing.assert_allclose(results[member].history["accuracy"], history["accuracy"], atol=1e-6)


@pytest.mark.trains
def test_member_models_of_a_linear_family_hold_each_members_weights_and_val_loss():
    """A linear hidden activation leaves the trial's model without a site for the --model
    reader; keeping models (``--keep-models``, export) still places every BN by what feeds
    it, and each kept model evaluates to its member's final val_loss."""
    from bnsearch.networks import compile_model

    data = make_synthetic(200, seed=2).standardize(0.2)
    network = NetworkSettings(epochs=2, hidden_units=(8,), activation="linear")
    configs = [BNConfig(placement=p, dropout=0.0, learning_rate=0.01) for p in PLACEMENTS]
    specs = sorted((TrialSpec(i, c, 30 + i) for i, c in enumerate(configs)), key=member_rank)
    engine = PopulationEngine(jit_compile=False)
    out = engine.train(specs, data, network, keep_models=True)
    slots = {"none": [], "input": ["input_bn"], "before": ["dense_1"], "after": ["dense_1"]}
    slots["before_output"] = ["dense_1", "output_bn"]
    _, _, x_val, y_val = data.split(network.validation_split)
    for p, (spec, result, model) in enumerate(zip(specs, out.results, out.models, strict=True)):
        assert result.state is TrialState.COMPLETE
        weights = engine.last_population.member_weights(p)
        kernel = model.get_layer("dense_1").kernel.numpy()
        np.testing.assert_array_equal(kernel, weights["kernel_dense_1"])
        bns = [la for la in model.layers if isinstance(la, keras.layers.BatchNormalization)]
        assert len(bns) == len(slots[spec.config.placement])
        for layer, slot in zip(bns, slots[spec.config.placement], strict=True):
            np.testing.assert_array_equal(layer.moving_mean.numpy(), weights[f"moving_mean_{slot}"])
        compile_model(model, spec.config, data.n_classes, network)
        loss = model.evaluate(x_val, y_val, verbose=0)[0]
        np.testing.assert_allclose(loss, result.history["val_loss"][-1], rtol=1e-4)
