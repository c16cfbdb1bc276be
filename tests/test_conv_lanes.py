"""The population engine's convolutions: a 1x1 one as a batched matmul and the gradients written
as forward convolutions (against TensorFlow's own, in graph mode and under XLA), and a
convolutional chunk trained in two lanes (each lane's trials record their lane, a replay of a
lane gives the same numbers, kept models hold the right member)."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from bnsearch.engines import PopulationEngine
from bnsearch.engines._population._ops import member_conv2d, member_depthwise_conv2d
from bnsearch.networks import NetworkSettings, compile_model
from bnsearch.replay import REPLAY_TOLERANCE
from bnsearch.trial import BNConfig, TrialSpec, TrialState
from tests.test_engines import _digit_images


@pytest.mark.parametrize(
    ("size", "kernel", "strides", "padding"),
    [
        ((8, 8), (3, 3), (1, 1), "same"),
        ((8, 8), (3, 3), (2, 2), "valid"),
        ((7, 9), (2, 3), (1, 2), "same"),
        ((9, 7), (3, 1), (2, 1), "valid"),
        ((5, 5), (1, 1), (1, 1), "valid"),
        ((5, 7), (1, 1), (2, 2), "same"),
    ],
)
@pytest.mark.parametrize("xla", [False, True])
def test_member_convolution_and_its_gradients_equal_tensorflows(
    size, kernel, strides, padding, xla
):
    """The engine's convolution (a batched matmul for 1x1, its gradients forward
    convolutions) against ``tf.nn.conv2d`` of each member and TensorFlow's own gradients."""
    rng = np.random.default_rng(0)
    P, rows, c, f = 3, 4, 2, 5
    x = tf.constant(rng.normal(size=(P, rows, *size, c)), tf.float32)
    k = tf.constant(rng.normal(size=(P, *kernel, c, f)), tf.float32)

    def each_member(x, k):
        return tf.stack([tf.nn.conv2d(x[p], k[p], strides, padding.upper()) for p in range(P)])

    engine = lambda x, k: member_conv2d(x, k, strides, padding)  # noqa: E731
    _assert_equal_with_gradients(engine, each_member, x, k, xla)


@pytest.mark.parametrize(
    ("size", "kernel", "strides", "padding", "multiplier"),
    [
        ((8, 8), (3, 3), (1, 1), "same", 1),
        ((8, 8), (3, 3), (2, 2), "same", 1),
        ((7, 9), (2, 3), (1, 2), "same", 1),
        ((9, 7), (3, 1), (2, 1), "valid", 1),
        ((9, 9), (2, 2), (2, 2), "valid", 1),
        ((7, 9), (2, 3), (1, 2), "same", 2),
        ((9, 7), (3, 1), (2, 1), "valid", 2),
    ],
)
@pytest.mark.parametrize("xla", [False, True])
def test_member_depthwise_convolution_and_its_gradients_equal_tensorflows(
    size, kernel, strides, padding, multiplier, xla
):
    """The engine's depthwise convolution (a multiplier of 1: its gradients forward depthwise
    convolutions; of 2: TensorFlow's) against each member's channels convolved one by one,
    and TensorFlow's own gradients."""
    rng = np.random.default_rng(0)
    P, rows, c = 3, 4, 2
    x = tf.constant(rng.normal(size=(P, rows, *size, c)), tf.float32)
    k = tf.constant(rng.normal(size=(P, *kernel, c, multiplier)), tf.float32)

    def each_member(x, k):
        # Each channel by its own conv2d: TensorFlow's depthwise kernel refuses unequal
        # strides on a CPU without oneDNN, conv2d takes them everywhere.
        def depthwise(image, kernel):
            channels = [
                tf.nn.conv2d(image[..., i : i + 1], kernel[:, :, i : i + 1], step, padding.upper())
                for i in range(c)
            ]
            return tf.concat(channels, axis=-1)

        step = [1, *strides, 1]
        return tf.stack([depthwise(x[p], k[p]) for p in range(P)])

    engine = lambda x, k: member_depthwise_conv2d(x, k, strides, padding)  # noqa: E731
    _assert_equal_with_gradients(engine, each_member, x, k, xla)


def _assert_equal_with_gradients(engine, each_member, x, k, xla: bool) -> None:
    """The engine's convolution of ``x`` by ``k`` (graph mode, or compiled with XLA), its
    output and both gradients, against ``each_member``'s with TensorFlow's own gradients."""

    def gradients(convolve):
        with tf.GradientTape() as tape:
            tape.watch([x, k])
            y = convolve(x, k)
            loss = tf.reduce_sum(y * tf.cos(y))  # a gradient that differs per output
        return (y, *tape.gradient(loss, [x, k]))

    ours = tf.function(lambda: gradients(engine), jit_compile=xla)()
    theirs = gradients(each_member)
    for mine, reference, what in zip(ours, theirs, ("output", "dx", "dkernel"), strict=True):
        assert mine.shape == reference.shape, what
        np.testing.assert_allclose(mine.numpy(), reference.numpy(), rtol=1e-4, atol=1e-4)


CONV_NET = NetworkSettings(family="cnn", conv_filters=(4,), hidden_units=(8,), epochs=1)


@pytest.mark.slow
def test_a_convolutional_chunk_trains_in_two_lanes_each_replayed_as_it_ran():
    data = _digit_images(160)
    specs = [
        TrialSpec(i, BNConfig(placement=("none", "before", "after")[i % 3], learning_rate=0.01), i)
        for i in range(18)
    ]
    engine = PopulationEngine(max_population=32, jit_compile=False)
    output = engine.train(specs, data, CONV_NET, keep_models=True)
    results = output.results
    assert [(lane.start, lane.stop) for lane in engine.last_lanes] == [(0, 9), (9, 18)]
    with pytest.raises(ValueError, match="member"):
        engine.last_population  # noqa: B018 (a chunk in lanes has no one population)
    assert all(r.state is TrialState.COMPLETE for r in results)
    lanes = {r.batch for r in results}  # the trials in the engine's member order, halved
    assert sorted(n for lane in lanes for n in lane) == list(range(18))
    assert sorted(len(lane) for lane in lanes) == [9, 9]
    assert {r.population for r in results} == {16}

    # A replay trains a lane's trials in one population of the lane's size: the same numbers
    # within replay's own tolerance (bnsearch.replay.REPLAY_TOLERANCE).
    lane_two = results[-1].batch
    replayed = (
        PopulationEngine(max_population=16, population_size=16, jit_compile=False)
        .train([specs[n] for n in lane_two], data, CONV_NET)
        .results
    )
    for number, again in zip(lane_two, replayed, strict=True):
        np.testing.assert_allclose(
            again.history["val_loss"], results[number].history["val_loss"], rtol=REPLAY_TOLERANCE
        )

    # A kept model of the second lane holds that member's weights: its val_loss.
    x_train, y_train, x_val, y_val = data.split(CONV_NET.validation_split)
    for index in (2, 13):
        model = output.models[index]
        compile_model(model, specs[index].config, data.n_classes, CONV_NET)
        loss = model.evaluate(x_val, y_val, verbose=0)[0]
        assert loss == pytest.approx(results[index].history["val_loss"][-1], rel=1e-4)
