"""The population engine: P trials trained at once in one TensorFlow graph.

The thread's network has about 5 k weights; at batch 16 ``model.fit`` spends nearly all its
time in per-step framework overhead. Here every weight carries a leading population axis
(``W[p, in, out]``), the P members' batches are gathered into ``[P, batch, features]`` and a
whole epoch runs inside one ``tf.function`` loop, so the overhead is paid once for P trials.

Semantics follow :func:`bnsearch.model.build_model` layer for layer (both read
:func:`bnsearch.model.layer_plan`), and reproduce Keras 3 (TensorFlow backend):

* Dense kernels come from the same seeded initialisers as the Keras model, biases from zeros;
  ``use_bias=False`` keeps a bias at zero by masking it.
* BatchNormalization in training mode normalises with the batch mean and *biased* variance,
  ``gamma * (x - mean) / sqrt(var + eps) + beta``, and updates
  ``moving = moving * momentum + batch_stat * (1 - momentum)`` in the forward pass;
  validation uses the moving statistics.
* Members differ in placement by masks. Each hidden layer has ONE BN slot serving both
  placements: its input is ``z`` for ``before`` members and ``act(z)`` for ``after``
  members, and the layer's output is selected per member with ``tf.where`` (``act(BN(z))``,
  ``BN(act(z))`` or ``act(z)``), so a mixed population pays for one BN per layer, not two.
  The input and output BN slots exist only in populations with a member that uses them
  (the compiled graph is keyed by the slots its members use). A slot's parameters get zero
  gradients from members that do not use it and are never read for them.
* Inverted dropout: a unit is kept with probability ``1 - rate`` and scaled by
  ``1 / (1 - rate)``. Masks come from a counter-based hash of (member seed, step, unit), so a
  member's randomness does not depend on which other members share its population, and
  members with the same seed (a paired block) share shuffling and dropout masks.
* Loss: for two classes Keras computes ``binary_crossentropy`` on the *pre-softmax logits*
  (sigmoid cross-entropy averaged over the two outputs); for more, softmax cross-entropy.
  Batch losses are averaged over the batch; the epoch ``loss`` and ``accuracy`` (argmax
  agreement) are averages over all training samples of the training-mode passes, weighted by
  batch size, before each update; ``val_*`` use inference mode.
* SGD with Nesterov momentum: ``m = mu*m - lr_t*g; w += mu*m - lr_t*g`` with
  ``lr_t = lr / (1 + decay * t)`` and ``t`` the number of updates made so far.
* Training rows are reshuffled every epoch (per member), the last partial batch is kept, and
  validation rows are the last ones, as in ``model.fit(validation_split=...)``.
* Regression (a dataset with ``task == "regression"``): one linear output, the loss Keras'
  ``mean_squared_error`` and the second metric its ``mae`` (``mae``/``val_mae`` in place of
  the accuracies), averaged as the loss is.
* A ``--model`` network is trained here when its rewrite is one of the built-in networks
  (:func:`bnsearch.networks.builtin_network`: the same layers from the same initial
  weights); a model without Dropout trains with its members' dropout rate set to 0, which
  is the same function. Any other model trains on the Keras engine.

A member whose loss turns NaN/inf is frozen at its last finite weights from that step on and
reported FAILED; a pruned member is frozen and reported PRUNED. Either way it can no longer
affect the others (every member's loss and gradients are computed on its own slice).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from bnsearch.data import Dataset, split_index
from bnsearch.engines._base import EpochCallback, TrainOutput
from bnsearch.errors import ConfigError
from bnsearch.networks import (
    NetworkSettings,
    build_model,
    builtin_network,
    check_image_rows,
    dense_uses_bias,
    initializer,
    layer_plan,
)
from bnsearch.trial import (
    TrialRecorder,
    TrialResult,
    TrialSpec,
    TrialState,
    layer_seed,
)

__all__ = [
    "Population",
    "PopulationEngine",
    "SlotUse",
    "check_memory",
    "estimate_memory_bytes",
    "hash_uniform",
]

# Bytes of float32 activations kept per (member, batch row, hidden unit) for backprop; a
# generous multiple covers pre/post BN, activation, dropout mask and gradients.
_BYTES_PER_ACTIVATION = 4 * 12


def estimate_memory_bytes(
    population: int, dataset: Dataset, network: NetworkSettings, n_val: int
) -> int:
    """A rough upper bound of the engine's working memory for one chunk."""
    width = max(network.hidden_units) * len(network.hidden_units)
    for conv in conv_layout(dataset, network):
        # im2col patches, the layer's output and its pooled output, per image row.
        width += conv.height * conv.width * (conv.patch + conv.filters) + conv.flat_out
    per_step = population * network.batch_size * width
    val = population * n_val * (dataset.n_features + width * 3)
    params = population * (dataset.n_features + 1) * width * 8
    return per_step * _BYTES_PER_ACTIVATION + val * 4 + params * 4 + dataset.x.nbytes * 2


@dataclass(frozen=True)
class _Slots:
    """Per-member 0/1 masks saying which BN slots and which Dense biases each member uses."""

    input_bn: np.ndarray  # [P]
    hidden_before: np.ndarray  # [P]
    hidden_after: np.ndarray  # [P]
    output_bn: np.ndarray  # [P]
    bias: np.ndarray  # [n_dense, P]


def _slots(specs: Sequence[TrialSpec], network: NetworkSettings) -> _Slots:
    n_layers = len(network.hidden_units) + 1
    if network.kind == "cnn":
        n_layers += len(network.conv_filters)
    input_bn, before, after, output_bn = [], [], [], []
    bias = np.zeros((n_layers, len(specs)), np.float32)
    for p, spec in enumerate(specs):
        plan = layer_plan(spec.config, network)
        kinds = [kind for kind, _ in plan]
        names = [name for _, name in plan]
        input_bn.append("input_bn" in names)
        output_bn.append("output_bn" in names)
        layers = [i for i, kind in enumerate(kinds) if kind in ("conv", "dense")]
        before.append(kinds[layers[0] + 1] == "bn")
        pairs = zip(kinds[:-1], kinds[1:], strict=True)
        after.append(any(a == "activation" and b == "bn" for a, b in pairs))
        for d, index in enumerate(layers):
            bias[d, p] = dense_uses_bias(spec.config, plan, index)
    as_f = lambda v: np.asarray(v, np.float32)  # noqa: E731
    return _Slots(as_f(input_bn), as_f(before), as_f(after), as_f(output_bn), bias)


@dataclass(frozen=True)
class SlotUse:
    """Which BN slots a population's graph has: the input BN, the hidden layers' BN (serving
    ``before`` and ``after``) and the output BN. Part of the compiled graph's key."""

    input_bn: bool = True
    hidden_bn: bool = True
    output_bn: bool = True

    @classmethod
    def of(cls, specs: Sequence[TrialSpec], network: NetworkSettings) -> SlotUse:
        slots = _slots(specs, network)
        return cls(
            bool(slots.input_bn.any()),
            bool(slots.hidden_before.any() or slots.hidden_after.any()),
            bool(slots.output_bn.any()),
        )


def hash_uniform(tf: Any, seeds: Any, counter: Any, shape: Sequence[Any]) -> Any:
    """Uniform [0, 1) numbers from a counter-based integer hash of (seed, counter, index).

    ``seeds`` is ``[P]`` int64, ``counter`` a scalar int64, ``shape`` is ``[P, ...]``. The
    hash is computed in uint32 arithmetic (wrap-around multiplication, logical shifts), which
    gives the same bits as 64-bit arithmetic masked to 32 bits at half the memory traffic.
    """
    bits = tf.bitwise
    u32 = tf.uint32
    size = tf.cast(tf.reduce_prod(shape[1:]), tf.int32)
    index = tf.cast(tf.reshape(tf.range(size, dtype=tf.int32), [1, -1]), u32)
    low32 = lambda v: tf.cast(bits.bitwise_and(tf.cast(v, tf.int64), 0xFFFFFFFF), u32)  # noqa: E731
    const = lambda v: tf.constant(v, u32)  # noqa: E731

    def mix(x: Any, shift: int, factor: int | None) -> Any:
        x = bits.bitwise_xor(x, bits.right_shift(x, const(shift)))
        return x if factor is None else x * const(factor)

    x = low32(seeds)[:, None] * const(0x9E3779B1)
    x = x + low32(counter) * const(0x85EBCA77) + index * const(0xC2B2AE3D)
    x = mix(x, 16, 0x7FEB352D)
    x = mix(x, 15, 0x846CA68B)
    x = mix(x, 16, None)
    u = tf.cast(bits.right_shift(x, const(8)), tf.float32) * (1.0 / (1 << 24))
    return tf.reshape(u, shape)


@dataclass(frozen=True)
class ConvLayer:
    """One ``Conv2D(padding='same')`` → ``MaxPooling2D(2, padding='same')`` stage."""

    height: int
    width: int
    in_channels: int
    filters: int
    kernel_size: int

    @property
    def patch(self) -> int:
        return self.kernel_size * self.kernel_size * self.in_channels

    @property
    def kernel_shape(self) -> tuple[int, int, int, int]:
        k = self.kernel_size
        return (k, k, self.in_channels, self.filters)

    @property
    def pooled(self) -> tuple[int, int]:
        return (-(-self.height // 2), -(-self.width // 2))

    @property
    def flat_out(self) -> int:
        height, width = self.pooled
        return height * width * self.filters


def conv_layout(dataset: Dataset, network: NetworkSettings) -> list[ConvLayer]:
    """The conv stages of a ``cnn`` network on ``dataset``'s images (none for an MLP)."""
    if network.kind != "cnn":
        return []
    shape = dataset.x.shape[1:]
    check_image_rows(shape)
    height, width = shape[:2]
    channels = shape[2] if len(shape) == 3 else 1
    layers = []
    for filters in network.conv_filters:
        layer = ConvLayer(height, width, channels, filters, network.kernel_size)
        layers.append(layer)
        (height, width), channels = layer.pooled, filters
    return layers


def _im2col(tf: Any, images: Any, k: int) -> Any:
    """``[n, h, w, c]`` → ``[n, h, w, k*k*c]``: each pixel's k×k neighbourhood ('same'
    zero padding), in Keras' kernel order (row, column, channel), so a 'same' Conv2D is one
    matrix product with the kernel reshaped to ``[k*k*c, filters]``. Slices and a concat
    (rather than ``extract_patches``) keep the gradient cheap and XLA-friendly."""
    before = (k - 1) // 2
    after = k - 1 - before
    padded = tf.pad(images, [[0, 0], [before, after], [before, after], [0, 0]])
    height, width = tf.shape(images)[1], tf.shape(images)[2]
    shifted = [
        padded[:, i : i + height, j : j + width, :] for i in range(k) for j in range(k)
    ]  # fmt: skip
    return tf.concat(shifted, axis=-1)


def _max_pool_2x2(tf: Any, images: Any, height: int, width: int) -> Any:
    """``MaxPooling2D(2, padding='same')`` as a maximum over each window's four positions
    (an odd edge padded with -inf after its last row or column, as 'same' pooling pads).

    Measured in the digits CNN's XLA training step at P=64 on a CPU: 12.9 ms a step
    against 17.1 ms with ``max_pool2d``, whose gradient (select-and-scatter) was the step's
    largest cost. One difference: where a window holds several equal maxima, this gradient
    is shared among them, ``max_pool2d``'s goes to the first. Exact ties come from equal
    inputs (a ReLU's zeros, whose gradient the ReLU stops anyway), and the parity test
    against Keras' MaxPooling2D holds.
    """
    pad_h, pad_w = height % 2, width % 2
    if pad_h or pad_w:
        padding = [[0, 0], [0, pad_h], [0, pad_w], [0, 0]]
        images = tf.pad(images, padding, constant_values=float("-inf"))
    half_h, half_w = (height + pad_h) // 2, (width + pad_w) // 2
    windows = tf.reshape(images, [-1, half_h, 2, half_w, 2, images.shape[-1]])
    return tf.reduce_max(windows, axis=[2, 4])


class Population:
    """The variables and compiled graph functions for ``size`` members.

    Built once per (size, dataset, network) and re-used for every chunk by :meth:`load`,
    so XLA compiles the epoch loop once per study rather than once per batch of trials.
    The validation pass compiles too (one shape per study): the CNN's forward pass over
    every validation image costs as much as 15 training steps in graph mode, 6 under XLA.
    The last partial batch stays in graph mode: compiling it costs more than it saves.
    """

    def __init__(
        self,
        size: int,
        dataset: Dataset,
        network: NetworkSettings,
        jit_compile: bool,
        slot_use: SlotUse | None = None,
    ) -> None:
        import tensorflow as tf

        self.tf = tf
        self.size = size
        self.slot_use = slot_use or SlotUse()
        self.network = network
        self.n_classes = dataset.n_classes
        self.regression = dataset.regression
        P = size
        self.convs = conv_layout(dataset, network)
        flat = self.convs[-1].flat_out if self.convs else dataset.n_features
        widths = [flat, *network.hidden_units, dataset.n_classes]
        self.widths = widths
        # Every layer with a kernel, convolutions first: (fan-in rows, units). A conv
        # kernel is kept as its im2col matrix [k*k*in_channels, filters].
        shapes = [(c.patch, c.filters) for c in self.convs]
        shapes += [(widths[d], widths[d + 1]) for d in range(len(widths) - 1)]
        f32 = tf.float32

        def state(shape: tuple[int, ...], dtype: Any = f32) -> Any:
            return tf.Variable(tf.zeros(shape, dtype), trainable=False)

        column = (P, 1, 1)
        self.m_input, self.m_before = state(column), state(column)
        self.m_after, self.m_output = state(column), state(column)
        self.bias_masks = [state(column) for _ in shapes]
        self.bn_momentum, self.bn_epsilon = state(column), state(column)
        self.dropout = state(column)
        self.lr = state((P,))
        self.seeds = state((P,), tf.int64)
        self.kernels = [tf.Variable(tf.zeros((P, *shape)), name=f"kernel_{d}")
                        for d, shape in enumerate(shapes)]  # fmt: skip
        self.biases = [tf.Variable(tf.zeros((P, 1, shape[1])), name=f"bias_{d}")
                       for d, shape in enumerate(shapes)]  # fmt: skip
        self.bn_widths = self._bn_widths(dataset)
        self.bn_slots = list(self.bn_widths)
        self.gammas = {i: tf.Variable(tf.ones((P, 1, w))) for i, w in self.bn_widths.items()}
        self.betas = {i: tf.Variable(tf.zeros((P, 1, w))) for i, w in self.bn_widths.items()}
        self.moving_means = {i: state((P, 1, w)) for i, w in self.bn_widths.items()}
        self.moving_vars = {i: state((P, 1, w)) for i, w in self.bn_widths.items()}
        self.params = [
            *self.kernels, *self.biases, *self.gammas.values(), *self.betas.values()
        ]  # fmt: skip
        self.velocities = [state(tuple(p.shape)) for p in self.params]
        self.active = tf.Variable(tf.ones((P,), tf.bool), trainable=False)
        self.iterations = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.x_train = tf.constant(dataset.x.reshape(dataset.n_rows, -1), f32)
        self.onehot = tf.constant(dataset.y_onehot, f32)
        self.train_epoch = tf.function(self._train_steps, jit_compile=jit_compile)
        self.train_steps_partial = tf.function(self._train_steps)
        self.evaluate = tf.function(self._evaluate, jit_compile=jit_compile)

    def _bn_widths(self, dataset: Dataset) -> dict[int, int]:
        """The BN slots this population builds, and their widths.

        Slot 0 is the inputs (per channel for images), then one per hidden layer, conv
        layers first (before or after the activation, per member), and last the output
        logits. A member uses at most one BN per position, so one slot per position keeps
        its moving statistics updated by exactly the BN it uses. Slots no member of this
        population uses get no variables.
        """
        use = self.slot_use
        input_width = self.convs[0].in_channels if self.convs else self.widths[0]
        hidden_widths = [*(c.filters for c in self.convs), *self.network.hidden_units]
        candidates = [(input_width, use.input_bn)]
        candidates += [(w, use.hidden_bn) for w in hidden_widths]
        candidates += [(dataset.n_classes, use.output_bn)]
        return {slot: w for slot, (w, used) in enumerate(candidates) if used}

    def load(self, specs: Sequence[TrialSpec]) -> None:
        """Start ``specs`` from their initial weights; members past ``len(specs)`` are idle."""
        P, n = self.size, len(specs)
        padded = list(specs) + [specs[0]] * (P - n)
        slots = _slots(padded, self.network)
        column = lambda a: np.asarray(a, np.float32).reshape(P, 1, 1)  # noqa: E731
        self.m_input.assign(column(slots.input_bn))
        self.m_before.assign(column(slots.hidden_before))
        self.m_after.assign(column(slots.hidden_after))
        self.m_output.assign(column(slots.output_bn))
        for d, mask in enumerate(self.bias_masks):
            mask.assign(column(slots.bias[d]))
        configs = [s.config for s in padded]
        self.bn_momentum.assign(column([c.momentum for c in configs]))
        self.bn_epsilon.assign(column([c.epsilon for c in configs]))
        self.dropout.assign(column([c.dropout for c in configs]))
        self.lr.assign(np.array([c.learning_rate for c in configs], np.float32))
        self.seeds.assign(np.array([s.seed for s in padded], np.int64))
        initial: dict[tuple[int, int], np.ndarray] = {}
        n_conv = len(self.convs)
        for d, kernel in enumerate(self.kernels):
            # The Keras model's seeds (trial.layer_seed); a conv kernel is drawn in Keras'
            # [k, k, in, out] shape (its fans).
            if d < n_conv:
                kind, index, shape = "conv", d, self.convs[d].kernel_shape
            else:
                kind, index, shape = "dense", d - n_conv, tuple(kernel.shape[1:])
            stacked = []
            for s in padded:
                key = (s.seed, d)
                if key not in initial:
                    init = initializer(self.network.initializer, layer_seed(s.seed, kind, index))
                    initial[key] = np.asarray(init(shape)).reshape(kernel.shape[1:])
                stacked.append(initial[key])
            kernel.assign(np.stack(stacked))
        if not self.slot_use_covers(SlotUse.of(padded, self.network)):
            raise ValueError("a member uses a BN slot this population was not built with")
        for variables, value in (
            (self.biases, 0.0), (self.gammas.values(), 1.0), (self.betas.values(), 0.0),
            (self.moving_means.values(), 0.0), (self.moving_vars.values(), 1.0),
            (self.velocities, 0.0),
        ):  # fmt: skip
            for variable in variables:
                variable.assign(np.full(variable.shape, value, np.float32))
        self.active.assign(np.arange(P) < n)
        self.iterations.assign(0)

    def slot_use_covers(self, need: SlotUse) -> bool:
        have = self.slot_use
        return all(h or not n for h, n in zip(
            (have.input_bn, have.hidden_bn, have.output_bn),
            (need.input_bn, need.hidden_bn, need.output_bn),
            strict=True,
        ))  # fmt: skip

    # --- forward pass ------------------------------------------------------------------

    def _bn(self, x: Any, slot: int, training: bool, updates: list) -> Any:
        tf = self.tf
        if training:
            mean = tf.reduce_mean(x, axis=1, keepdims=True)
            variance = tf.reduce_mean(tf.square(x - mean), axis=1, keepdims=True)
            updates.append((slot, tf.stop_gradient(mean), tf.stop_gradient(variance)))
        else:
            mean, variance = self.moving_means[slot], self.moving_vars[slot]
        inv = tf.math.rsqrt(variance + self.bn_epsilon) * self.gammas[slot]
        return x * inv + (self.betas[slot] - mean * inv)

    def _forward(self, x: Any, training: bool, counter: Any) -> tuple[Any, list]:
        """``x`` is ``[P, rows, features]``; returns logits ``[P, rows, classes]``."""
        tf = self.tf
        activation = getattr(tf.nn, self.network.activation, None)
        if self.network.activation == "linear":
            activation = tf.identity
        elif self.network.activation == "sigmoid":
            activation = tf.sigmoid
        elif self.network.activation == "gelu":
            activation = lambda v: tf.nn.gelu(v, approximate=False)  # noqa: E731
        updates: list = []
        use = lambda mask, a, b: tf.where(mask > 0, a, b)  # noqa: E731
        slots = self.slot_use
        P = tf.shape(x)[0]
        rows = tf.shape(x)[1]
        if self.convs:
            # Images as [P, rows * height * width, channels]: BN over axis 1 is then the
            # per-channel statistics over batch, height and width, as Keras' axis=-1.
            first = self.convs[0]
            x = tf.reshape(x, [P, -1, first.in_channels])
        if slots.input_bn:
            x = use(self.m_input, self._bn(x, 0, training, updates), x)

        def layer(d: int, z: Any) -> Any:
            """Layer ``d``'s BN (placed per member) and activation on its output ``z``."""
            plain = activation(z)
            if not slots.hidden_bn:
                return plain
            # One BN serves both placements: it normalises z for `before` members and
            # act(z) for `after` members.
            normalised = self._bn(use(self.m_before, z, plain), 1 + d, training, updates)
            after_or_plain = use(self.m_after, normalised, plain)
            return use(self.m_before, activation(normalised), after_or_plain)

        for c, conv in enumerate(self.convs):
            images = tf.reshape(x, [P * rows, conv.height, conv.width, conv.in_channels])
            patches = tf.reshape(_im2col(tf, images, conv.kernel_size), [P, -1, conv.patch])
            z = tf.matmul(patches, self.kernels[c]) + self.biases[c] * self.bias_masks[c]
            a = tf.reshape(layer(c, z), [P * rows, conv.height, conv.width, conv.filters])
            pooled = _max_pool_2x2(tf, a, conv.height, conv.width)
            x = tf.reshape(pooled, [P, -1, conv.filters])
        n_conv = len(self.convs)
        if self.convs:
            x = tf.reshape(x, [P, rows, self.widths[0]])
        n_hidden = len(self.network.hidden_units)
        for h in range(n_hidden):
            d = n_conv + h
            z = tf.matmul(x, self.kernels[d]) + self.biases[d] * self.bias_masks[d]
            a = layer(d, z)
            x = self._dropout(a, counter * 16 + h) if training else a
        out = n_conv + n_hidden
        logits = tf.matmul(x, self.kernels[out]) + self.biases[out] * self.bias_masks[out]
        if slots.output_bn:
            logits = use(self.m_output, self._bn(logits, 1 + out, training, updates), logits)
        return logits, updates

    def _dropout(self, a: Any, counter: Any) -> Any:
        """Inverted dropout with each member's rate and its hashed mask."""
        tf = self.tf
        u = hash_uniform(tf, self.seeds, counter, tf.shape(a))
        keep = tf.cast(u >= self.dropout, tf.float32)
        return a * keep / (1.0 - self.dropout)

    def _per_sample_loss(self, logits: Any, labels: Any) -> Any:
        tf = self.tf
        if self.regression:  # Keras' mean_squared_error: the mean over the output axis
            return tf.reduce_mean(tf.square(logits - labels), axis=-1)
        if self.n_classes == 2:
            ce = tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits)
            return tf.reduce_mean(ce, axis=-1)
        return tf.nn.softmax_cross_entropy_with_logits(labels=labels, logits=logits)

    def _correct(self, logits: Any, labels: Any) -> Any:
        """Per sample: 1 where the argmax agrees with the label; a regression's absolute
        error (Keras' ``mae``) instead."""
        tf = self.tf
        if self.regression:
            return tf.reduce_mean(tf.abs(logits - labels), axis=-1)
        return tf.cast(tf.equal(tf.argmax(logits, -1), tf.argmax(labels, -1)), tf.float32)

    # --- training ------------------------------------------------------------------------

    def _step(self, index: Any) -> tuple[Any, Any]:
        """One SGD step on the batch ``index`` (``[P, batch]`` row numbers)."""
        tf = self.tf
        x = tf.gather(self.x_train, index)
        labels = tf.gather(self.onehot, index)
        with tf.GradientTape() as tape:
            logits, updates = self._forward(x, True, self.iterations)
            per_sample = self._per_sample_loss(logits, labels)
            loss = tf.reduce_mean(per_sample, axis=1)  # [P]
            finite = tf.math.is_finite(loss)
            counted = tf.where(self.active & finite, loss, tf.zeros_like(loss))
            total = tf.reduce_sum(counted)
        # Zero for a parameter nothing reaches: none does in the engine's own graphs, but the
        # step profiler (_profile.py) removes BN, which leaves its parameters unreached.
        grads = tape.gradient(total, self.params, unconnected_gradients="zero")
        # A member's gradients are finite iff their sum is (a NaN or inf anywhere makes the
        # sum non-finite); one sum per member is far cheaper than an elementwise test. A sum
        # that overflows float32 freezes a member whose update would have been absurd anyway.
        grads_finite = tf.ones_like(finite)
        for g in grads:
            grads_finite &= tf.math.is_finite(tf.reduce_sum(tf.reshape(g, [tf.shape(g)[0], -1]), 1))
        live3 = tf.reshape(self.active & finite & grads_finite, [-1, 1, 1])
        self._apply_gradients(grads, live3)
        for slot, mean, variance in updates:
            m = self.bn_momentum
            mm, mv = self.moving_means[slot], self.moving_vars[slot]
            mm.assign(tf.where(live3, mm * m + mean * (1.0 - m), mm))
            mv.assign(tf.where(live3, mv * m + variance * (1.0 - m), mv))
        self.active.assign(self.active & finite)
        self.iterations.assign_add(1)
        rows = tf.cast(tf.shape(index)[1], tf.float32)
        correct = tf.reduce_sum(self._correct(logits, labels), axis=1)
        return loss * rows, correct

    def _apply_gradients(self, grads: list[Any], live3: Any) -> None:
        """Nesterov SGD with inverse-time decay, for live members only (``live3``)."""
        tf = self.tf
        t = tf.cast(self.iterations, tf.float32)
        lr = tf.reshape(self.lr / (1.0 + self.network.lr_decay * t), [-1, 1, 1])
        mu = self.network.sgd_momentum
        for param, velocity, grad in zip(self.params, self.velocities, grads, strict=True):
            grad = tf.where(live3, grad, tf.zeros_like(grad))
            new_velocity = mu * velocity - lr * grad
            velocity.assign(tf.where(live3, new_velocity, velocity))
            param.assign(tf.where(live3, param + mu * new_velocity - lr * grad, param))

    def _train_steps(self, batches: Any) -> tuple[Any, Any]:
        """Run the steps in ``batches`` (``[steps, P, batch]``); sums of loss and hits."""
        tf = self.tf
        P = tf.shape(batches)[1]
        loss_sum = tf.zeros([P], tf.float32)
        correct_sum = tf.zeros([P], tf.float32)
        for step in tf.range(tf.shape(batches)[0]):
            loss, correct = self._step(batches[step])
            loss_sum += loss
            correct_sum += correct
        return loss_sum, correct_sum

    def _evaluate(self, x: Any, labels: Any) -> tuple[Any, Any]:
        tf = self.tf
        P = tf.shape(self.lr)[0]
        xs = tf.broadcast_to(x[None], tf.concat([[P], tf.shape(x)], 0))
        logits, _ = self._forward(xs, False, tf.constant(0, tf.int64))
        labels = tf.broadcast_to(labels[None], tf.shape(logits))
        loss = tf.reduce_mean(self._per_sample_loss(logits, labels), axis=1)
        accuracy = tf.reduce_mean(self._correct(logits, labels), axis=1)
        return loss, accuracy

    # --- inspection (tests compare these with the Keras model) ---------------------------

    def member_model(
        self, p: int, spec: TrialSpec, dataset: Dataset, network: NetworkSettings | None = None
    ) -> Any:
        """Member ``p`` as the Keras model :func:`bnsearch.model.build_model` builds for
        ``spec``, holding the member's trained weights and moving statistics. It is not
        compiled: the population's optimizer state (velocities) stays behind, so a saved
        model carries no half-built optimizer; compile it to train or evaluate further.
        ``network``: the ``--model`` network this population trains in its built-in form
        (the model comes back as the rewrite of that model)."""
        if network is not None and network.kind == "model":
            return self._rewritten_member(p, spec, dataset, network)
        model = build_model(
            spec.config, dataset.x.shape[1:], dataset.n_classes, self.network, spec.seed, False
        )
        weights = self.member_weights(p)
        n_conv, n_hidden = len(self.convs), len(self.network.hidden_units)
        slots = {"input_bn": 0, "output_bn": n_conv + n_hidden + 1}
        slots |= {f"conv_bn_{i}": i for i in range(1, n_conv + 1)}
        slots |= {f"bn_{i}": n_conv + i for i in range(1, n_hidden + 1)}
        kernels = {f"conv_{i}": f"conv_{i - 1}" for i in range(1, n_conv + 1)}
        kernels |= {f"dense_{i}": f"{i - 1}" for i in range(1, n_hidden + 1)}
        kernels["output_dense"] = f"{n_hidden}"
        for layer in model.layers:
            if layer.name in kernels:
                key = kernels[layer.name]
                layer.kernel.assign(weights[f"kernel_{key}"])
                if layer.use_bias:
                    layer.bias.assign(weights[f"bias_{key}"])
            elif layer.name in slots:
                slot = slots[layer.name]
                layer.gamma.assign(weights[f"gamma_{slot}"])
                layer.beta.assign(weights[f"beta_{slot}"])
                layer.moving_mean.assign(weights[f"moving_mean_{slot}"])
                layer.moving_variance.assign(weights[f"moving_var_{slot}"])
        return model

    def _rewritten_member(
        self, p: int, spec: TrialSpec, dataset: Dataset, network: NetworkSettings
    ) -> Any:
        """A ``--model`` member: its layers are the built-in form's in the same order, so
        the k-th Dense/Conv2D holds kernel k and the BNs, in order, the slots it uses."""
        model = build_model(
            spec.config, dataset.x.shape[1:], dataset.n_classes, network, spec.seed, False
        )
        weights = self.member_weights(p)
        keys = [f"conv_{c}" for c in range(len(self.convs))]
        keys += [str(d) for d in range(len(self.kernels) - len(self.convs))]
        cores = [la for la in model.layers if type(la).__name__ in ("Dense", "Conv2D")]
        for layer, key in zip(cores, keys, strict=True):
            layer.kernel.assign(weights[f"kernel_{key}"])
            if layer.use_bias:
                layer.bias.assign(weights[f"bias_{key}"])
        placement = spec.config.placement
        slots = [0] if placement == "input" else []
        if placement in ("before", "after", "before_output"):
            slots += list(range(1, len(self.kernels)))
        if placement == "before_output":
            slots.append(len(self.kernels))
        bns = [la for la in model.layers if type(la).__name__ == "BatchNormalization"]
        for layer, slot in zip(bns, slots, strict=True):
            layer.gamma.assign(weights[f"gamma_{slot}"])
            layer.beta.assign(weights[f"beta_{slot}"])
            layer.moving_mean.assign(weights[f"moving_mean_{slot}"])
            layer.moving_variance.assign(weights[f"moving_var_{slot}"])
        return model

    def member_weights(self, p: int) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        n_conv = len(self.convs)
        for d, (kernel, bias) in enumerate(zip(self.kernels, self.biases, strict=True)):
            name = f"conv_{d}" if d < n_conv else f"{d - n_conv}"
            shape = self.convs[d].kernel_shape if d < n_conv else kernel.shape[1:]
            out[f"kernel_{name}"] = kernel[p].numpy().reshape(shape)
            out[f"bias_{name}"] = bias[p, 0].numpy()
        for i in self.bn_slots:
            out[f"gamma_{i}"] = self.gammas[i][p, 0].numpy()
            out[f"beta_{i}"] = self.betas[i][p, 0].numpy()
            out[f"moving_mean_{i}"] = self.moving_means[i][p, 0].numpy()
            out[f"moving_var_{i}"] = self.moving_vars[i][p, 0].numpy()
        return out


def _builtin(network: NetworkSettings) -> tuple[NetworkSettings, bool]:
    """The built-in network this engine trains for ``network`` and whether it has Dropout
    (a ``--model`` network's built-in form; any other network as it is)."""
    if network.kind != "model":
        return network, True
    form = builtin_network(network)
    if isinstance(form, str):
        raise ConfigError(
            f"the population engine cannot train this --model network ({form}); use --engine keras."
        )
    return form


def _population_size(n_specs: int, max_population: int) -> int:
    """Round a chunk up to a power of two (at most ``max_population``) so that chunks of
    similar size share one compiled graph; the padding members stay idle."""
    size = 1
    while size < n_specs:
        size *= 2
    return min(size, max_population)


MEMORY_LIMIT_BYTES = 4 * 2**30


def check_memory(
    population: int,
    dataset: Dataset,
    network: NetworkSettings,
    limit_bytes: int = MEMORY_LIMIT_BYTES,
) -> None:
    """Refuse, before anything runs, a population or dataset too large for the memory limit."""
    size = _population_size(population, population)
    n_val = dataset.n_rows - split_index(dataset.n_rows, network.validation_split)
    need = estimate_memory_bytes(size, dataset, network, n_val)
    if need > limit_bytes:
        raise ConfigError(
            f"a population of {size} on {dataset.n_rows} rows needs about "
            f"{need / 2**30:.1f} GiB, over the {limit_bytes / 2**30:.1f} GiB limit; lower "
            "--population (or use fewer rows)."
        )


MAX_CACHED_POPULATIONS = 4
# Compiled populations of this process, shared by every PopulationEngine: a sweep or a test
# session that runs several studies on the same data compiles each graph once. ``load``
# resets every variable, so a population carries nothing from one use to the next.
_COMPILED: dict[tuple[Any, ...], Population] = {}


class PopulationEngine:
    """Trains up to ``max_population`` trials at once in one vectorised TensorFlow graph.

    ``jit_compile`` compiles the epoch loop with XLA (measured 2-3x faster on CPU at P >= 32;
    see ``python -m bnsearch bench``). ``shuffle=False`` feeds the training rows in order
    every epoch (used by the parity test against ``model.fit(shuffle=False)``).
    ``population_size`` compiles every chunk's graph at exactly that size (``replay``
    trains a batch in a graph of the size it was trained in); by default a chunk gets the
    next power of two, or an already compiled graph with room for it.
    """

    name = "population"

    def __init__(
        self,
        max_population: int = 64,
        shuffle: bool = True,
        jit_compile: bool = True,
        memory_limit_bytes: int = MEMORY_LIMIT_BYTES,
        population_size: int | None = None,
    ) -> None:
        self.max_population = max_population
        self.shuffle = shuffle
        self.jit_compile = jit_compile
        self.memory_limit_bytes = memory_limit_bytes
        self.population_size = population_size
        self.last_population: Population | None = None

    @property
    def trials_at_once(self) -> int:
        return self.max_population

    def check_fits(self, dataset: Dataset, network: NetworkSettings) -> None:
        """Refuse, before anything is logged, a ``--model`` that does not suit the data or a
        population too large for the memory limit."""
        from bnsearch.engines._keras import model_fits_data

        model_fits_data(dataset, network)
        network, _ = _builtin(network)
        check_memory(self.max_population, dataset, network, self.memory_limit_bytes)

    @staticmethod
    def trains(network: NetworkSettings) -> bool:
        """bnsearch's own families (MLP and CNN): their layers have a vectorised form here;
        so has a ``--model`` network whose rewrite is one of them (see
        :func:`bnsearch.networks.builtin_network`). A network from your own ``builder``, or
        another model, trains on the Keras engine."""
        if network.kind == "model":
            return not isinstance(builtin_network(network), str)
        return network.kind in ("mlp", "cnn")

    def train(
        self,
        specs: Sequence[TrialSpec],
        dataset: Dataset,
        network: NetworkSettings,
        on_epoch: EpochCallback | None = None,
        keep_models: bool = False,
    ) -> TrainOutput:
        """With ``keep_models``, a Keras model per trial comes back too, holding the
        member's trained weights (None for a trial that did not complete)."""
        if self.max_population < 1:
            raise ConfigError(f"`max_population` must be >= 1, got {self.max_population}.")
        if not self.trains(network):
            why = "a network from `builder`"
            if network.kind == "model":
                why = f"this --model network ({builtin_network(network)})"
            raise ConfigError(
                f"the population engine trains bnsearch's mlp and cnn families, not {why}; "
                "use --engine keras."
            )
        original, given = network, list(specs)
        network, dropout = _builtin(network)
        if not dropout:  # a model without Dropout: rate 0 is the same function
            specs = [replace(s, config=s.config.replace(dropout=0.0)) for s in specs]
        # A searched activation changes the graph: one population per activation.
        groups: dict[str, list[int]] = {}
        for index, spec in enumerate(specs):
            groups.setdefault(spec.config.activation or network.activation, []).append(index)
        results: list[TrialResult | None] = [None] * len(specs)
        models: list[Any] = [None] * len(specs)
        for activation, members in groups.items():
            group_network = replace(network, activation=activation)
            for start in range(0, len(members), self.max_population):
                chunk = members[start : start + self.max_population]

                def chunk_callback(
                    index: int, epoch: int, metrics: dict[str, float], chunk: list = chunk
                ) -> bool:
                    return on_epoch(chunk[index], epoch, metrics) if on_epoch else False

                trained = self._train_chunk(
                    [specs[i] for i in chunk], dataset, group_network, chunk_callback
                )
                for p, (index, result) in enumerate(zip(chunk, trained, strict=True)):
                    results[index] = replace(result, spec=given[index])
                    if keep_models and result.state is TrialState.COMPLETE:
                        models[index] = self.last_population.member_model(
                            p, specs[index], dataset, original
                        )
        assert all(r is not None for r in results), "every spec belongs to one group"
        return TrainOutput(results, models if keep_models else [])  # type: ignore[arg-type]

    def _population(
        self, n_specs: int, dataset: Dataset, network: NetworkSettings, slot_use: SlotUse
    ) -> Population:
        """A compiled population for ``n_specs`` trials: one already compiled in this
        process that holds them with at most 4x room to spare (the smallest such), else a
        new one of the next power of two. Compiling costs seconds (the CNN's about 8 s), so
        a small confirmation round runs in the search's population rather than compiling
        its own: measured on the digits CNN, 9 trials train in a compiled P=32 in 5 s
        against 8 s of compiling a P=16 and 3 s of training in it."""
        # Epochs do not shape the graph: studies with other epoch counts share it.
        shape = (dataset.fingerprint, replace(network, epochs=1), self.jit_compile, slot_use)
        fitting = [
            key[0]
            for key in _COMPILED
            if key[1:] == shape and n_specs <= key[0] <= min(4 * n_specs, self.max_population)
        ]
        if self.population_size is not None:
            size = max(self.population_size, n_specs)
        elif fitting:
            size = min(fitting)
        else:
            size = _population_size(n_specs, self.max_population)
        key = (size, *shape)
        check_memory(size, dataset, network, self.memory_limit_bytes)
        if key not in _COMPILED:
            # A few populations' graphs (one per searched activation) and no more keeps
            # memory flat over a long study.
            while len(_COMPILED) >= MAX_CACHED_POPULATIONS:
                del _COMPILED[next(iter(_COMPILED))]
            _COMPILED[key] = Population(size, dataset, network, self.jit_compile, slot_use)
        return _COMPILED[key]

    def _train_chunk(
        self,
        specs: list[TrialSpec],
        dataset: Dataset,
        network: NetworkSettings,
        on_epoch: EpochCallback,
    ) -> list[TrialResult]:
        import tensorflow as tf

        started = time.perf_counter()
        n = len(specs)
        population = self._population(n, dataset, network, SlotUse.of(specs, network))
        population.load(specs)
        self.last_population = population
        P = population.size
        n_train = split_index(dataset.n_rows, network.validation_split)
        x_val = tf.constant(dataset.x[n_train:].reshape(dataset.n_rows - n_train, -1), tf.float32)
        y_val = tf.constant(dataset.y_onehot[n_train:], tf.float32)
        batch = network.batch_size
        full_steps, remainder = divmod(n_train, batch)
        rngs = [np.random.default_rng(spec.seed) for spec in specs]
        recorders = [
            TrialRecorder(spec, self.name, lambda e, m, p=p: on_epoch(p, e, m))
            for p, spec in enumerate(specs)
        ]
        for epoch in range(network.epochs):
            if all(recorder.stopped for recorder in recorders):
                break
            if self.shuffle:
                order = np.stack([rng.permutation(n_train) for rng in rngs])
            else:
                order = np.tile(np.arange(n_train), (n, 1))
            order = np.concatenate([order, np.repeat(order[:1], P - n, axis=0)]).astype(np.int32)
            head = order[:, : full_steps * batch].reshape(P, full_steps, batch).transpose(1, 0, 2)
            loss_sum, correct_sum = population.train_epoch(tf.constant(head))
            if remainder:
                tail = order[:, full_steps * batch :][None]
                extra_loss, extra_correct = population.train_steps_partial(tf.constant(tail))
                loss_sum += extra_loss
                correct_sum += extra_correct
            val_loss, val_acc = population.evaluate(x_val, y_val)
            second = "mae" if dataset.regression else "accuracy"
            values = {
                "loss": (loss_sum / n_train).numpy(),
                second: (correct_sum / n_train).numpy(),
                "val_loss": val_loss.numpy(),
                f"val_{second}": val_acc.numpy(),
            }
            active = population.active.numpy()
            for p, recorder in enumerate(recorders):
                if recorder.stopped:
                    continue
                metrics = {m: float(values[m][p]) for m in values}
                # ``active`` is cleared in the graph by a member's non-finite batch loss.
                if recorder.record_epoch(epoch, metrics, diverged=not active[p]):
                    active[p] = False
            population.active.assign(active)
        # Who trained together, in how large a graph: the replay's recipe.
        numbers, wall = tuple(s.number for s in specs), (time.perf_counter() - started) / n
        return [replace(r.result(wall), population=P, batch=numbers) for r in recorders]
