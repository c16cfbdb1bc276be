"""One compiled population: P members' variables and the graph functions that train them,
interpreting the layer graph op by op on tensors ``[P, rows, ...]``."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from bnsearch.data import Dataset
from bnsearch.engines._population._graph import MEMBER_ORDER, SlotUse, graph_for, member_rank
from bnsearch.engines._population._ops import (
    activation_function,
    hash_uniform,
    member_conv2d,
    member_depthwise_conv2d,
    stateless_op,
)
from bnsearch.networks import GraphOp, LayerGraph, NetworkSettings
from bnsearch.networks import seeded_initializer as initializer_of
from bnsearch.trial import TrialSpec, layer_seed

_BEFORE = ("before", "before_output")
#: Per member, 1 where its placement puts a BN in the slots of that kind.
_MASKS: dict[str, Callable[[str], bool]] = {
    "input": lambda placement: placement == "input",
    "before": lambda placement: placement in _BEFORE,
    "after": lambda placement: placement == "after",
    "output": lambda placement: placement == "before_output",
    "kept": lambda placement: placement != "none",  # a BN the model keeps
}
#: Each mask's members in a grouped population (members in :data:`MEMBER_ORDER`): the run
#: from one placement's first member to another's (None: the last member's end).
_SPANS: dict[str, tuple[str, str | None]] = {
    "input": ("input", "none"),
    "before": ("before", "after"),
    "after": ("after", "input"),
    "output": ("before_output", "after"),
    "kept": ("before", "none"),
}


def _bias_used(op: GraphOp, placement: str, use_bias: bool) -> bool:
    """The rewrite's bias rule: a bias unless a BN now follows directly (then ``use_bias``)."""
    feeds_bn = (
        (op.role == "site" and placement in _BEFORE)
        or (op.role == "output" and placement == "before_output")
        or (op.feeds_kept_bn and placement != "none")
    )
    return use_bias or not feeds_bn


def _weights(op: GraphOp) -> dict[str, tuple[Any, tuple[int, ...], tuple[int, ...]]]:
    """The core ``op``'s weights (``kernel``, a SeparableConv2D's ``pointwise``, ``bias``):
    each one's serialised initializer, its shape in Keras and a member's shape here."""
    weights = {
        "kernel": (op.kernel_initializer, op.kernel_shape, (op.fan_in, op.kernel_shape[-1])),
        "pointwise": (op.pointwise_initializer, op.pointwise_shape, op.pointwise_shape[-2:]),
        "bias": (op.bias_initializer, (op.shape[-1],), (1, op.shape[-1])),
    }
    if not op.pointwise_shape:
        del weights["pointwise"]
    return weights


#: Each BN variable of a slot and the value it starts from.
_BN_START = {"gamma": 1.0, "beta": 0.0, "moving_mean": 0.0, "moving_var": 1.0}
#: ``tf.function`` without AutoGraph: the graph's one loop is a ``tf.while_loop`` already,
#: and converting every function a step calls took longer than building the rest of a
#: population's graph.
_tf_function = functools.partial(tf.function, autograph=False)


def _initial(op: GraphOp, specs: Sequence[TrialSpec], which: str) -> np.ndarray:
    """Every member's initial ``which`` weight of ``op``, as its trial's Keras model draws it."""
    serialized, shape, target = _weights(op)[which]
    drawn: dict[int, np.ndarray] = {}
    for spec in specs:
        if spec.seed not in drawn:
            init = initializer_of(serialized, layer_seed(spec.seed, *op.seed_key))
            drawn[spec.seed] = np.asarray(init(shape), np.float32).reshape(target)
    return np.stack([drawn[spec.seed] for spec in specs])


class Population:
    """The variables and compiled graph functions for ``size`` members, re-used by :meth:`load`."""

    def __init__(
        self,
        size: int,
        dataset: Dataset,
        network: NetworkSettings,
        jit_compile: bool,
        slot_use: SlotUse,
        graph: LayerGraph | None = None,
    ) -> None:
        self.size = P = size
        self.slot_use = slot_use
        self.network = network
        self.graph = graph or graph_for(network, dataset)
        self.n_classes = dataset.n_classes
        self.regression = dataset.regression
        self.cores = {op.name: op for op in (self.graph.ops[i] for i in self.graph.cores)}
        f32 = tf.float32

        def state(shape: tuple[int, ...], dtype: Any = f32) -> Any:
            return tf.Variable(tf.zeros(shape, dtype), trainable=False)

        column = (P, 1, 1)
        self.masks = {name: state(column) for name in _MASKS}
        self.bn_momentum, self.bn_epsilon, self.dropout = (state(column) for _ in range(3))
        self.lr = state((P,))
        self.seeds = state((P,), tf.int64)
        self.weights = self._make_weights()
        self.bias_masks = {name: state(column) for name in self.cores}
        self.bn_widths = self._bn_widths()
        self.bn = {  # the moving statistics are not trained
            key: {
                s: tf.Variable(tf.zeros((P, 1, w)), trainable=key in ("gamma", "beta"))
                for s, w in self.bn_widths.items()
            }
            for key in _BN_START
        }
        trained = (*self.weights.values(), self.bn["gamma"], self.bn["beta"])
        self.params = [variable for variables in trained for variable in variables.values()]
        self.velocities = [state(tuple(p.shape)) for p in self.params]
        self.grouped = not jit_compile  # XLA fuses selects, and needs static shapes
        self.starts = state((len(MEMBER_ORDER),), tf.int32)  # each placement's first member
        self.active = tf.Variable(tf.ones((P,), tf.bool), trainable=False)
        self.iterations = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.x_train = tf.constant(dataset.x.reshape(dataset.n_rows, -1), f32)
        self.onehot = tf.constant(dataset.y_onehot, f32)
        # A counter per (step, Dropout op): 16 a step, more for a network with more.
        self.dropout_stride = max(16, sum(op.kind == "dropout" for op in self.graph.ops))
        # The update is one fused XLA loop a parameter even when the step runs in graph mode,
        # where its dozen element-wise ops would each pass over every weight of every member.
        # (An XLA population's compiled epoch fuses it anyway; its one partial batch an epoch
        # is not worth a second compile.)
        self.apply_gradients = (
            self._apply_gradients
            if jit_compile
            else _tf_function(self._apply_gradients, jit_compile=True)
        )
        self.train_epoch = _tf_function(self._train_steps, jit_compile=jit_compile)
        self.train_steps_partial = _tf_function(self._train_steps)
        self.evaluate = _tf_function(self._evaluate, jit_compile=jit_compile)

    def _make_weights(self) -> dict[str, dict[str, Any]]:
        """Per kind of weight (:func:`_weights`), every core's variable of it."""
        weights: dict[str, dict[str, Any]] = {"kernel": {}, "pointwise": {}, "bias": {}}
        for i, (name, op) in enumerate(self.cores.items()):
            for which, (_, _, shape) in _weights(op).items():
                zeros = tf.zeros((self.size, *shape))
                weights[which][name] = tf.Variable(zeros, name=f"{which}_{i}")
        return weights

    def _bn_widths(self) -> dict[str, int]:
        """The BN slots no member leaves unused, and their widths."""
        use, graph = self.slot_use, self.graph
        widths: dict[str, int] = {}
        if use.input_bn:
            widths["input_bn"] = graph.input_channels
        for op in graph.ops:
            placed = (op.kind == "core" and op.role == "site") or op.kind == "preact"
            if (placed and use.hidden_bn) or op.kind == "bn":
                widths[op.name] = op.shape[-1]
        if use.output_bn:
            widths["output_bn"] = graph.ops[graph.output].shape[-1]
        return widths

    def load(self, specs: Sequence[TrialSpec]) -> None:
        """Start ``specs`` from their initial weights; members past ``len(specs)`` are idle."""
        P, n = self.size, len(specs)
        padded = list(specs) + [specs[-1]] * (P - n)  # the last: a grouped order holds
        configs = [s.config for s in padded]
        ranks = [member_rank(spec) for spec in padded]
        if self.grouped and ranks != sorted(ranks):
            placements = [c.placement for c in configs]
            raise ValueError(
                f"a graph-mode population takes its members in the order {MEMBER_ORDER} "
                f"(PopulationEngine sorts them so), got {placements}"
            )
        self.starts.assign([sum(r < k for r in ranks) for k in range(len(MEMBER_ORDER))])
        column = lambda values: np.asarray(values, np.float32).reshape(P, 1, 1)  # noqa: E731
        for name, placed in _MASKS.items():
            self.masks[name].assign(column([placed(c.placement) for c in configs]))
        self.bn_momentum.assign(column([c.momentum for c in configs]))
        self.bn_epsilon.assign(column([c.epsilon for c in configs]))
        self.dropout.assign(column([c.dropout for c in configs]))
        self.lr.assign(np.array([c.learning_rate for c in configs], np.float32))
        self.seeds.assign(np.array([s.seed for s in padded], np.int64))
        for name, op in self.cores.items():
            used = [_bias_used(op, c.placement, c.use_bias) for c in configs]
            self.bias_masks[name].assign(column(used))
            for which in _weights(op):
                self.weights[which][name].assign(_initial(op, padded, which))
        for key, start in _BN_START.items():
            for variable in self.bn[key].values():
                variable.assign(np.full(variable.shape, start, np.float32))
        for velocity in self.velocities:
            velocity.assign(np.zeros(velocity.shape, np.float32))
        self.active.assign(np.arange(P) < n)
        self.iterations.assign(0)

    def _mask(self, mask: Any, like: Any) -> Any:
        """A ``[P, 1, 1]`` mask shaped to broadcast against ``like`` (any rank)."""
        return tf.reshape(mask, [-1] + [1] * (like.shape.rank - 1))

    def _span(self, mask: str) -> tuple[Any, Any]:
        """The members ``lo:hi`` of ``mask`` in a grouped population."""
        first, end = _SPANS[mask]
        lo = self.starts[MEMBER_ORDER.index(first)]
        return lo, self.size if end is None else self.starts[MEMBER_ORDER.index(end)]

    def _split(self, x: Any, *ends: Any) -> list[Any]:
        """``x`` cut along the members' axis at ``ends``, the last piece to the end."""
        sizes = tf.stack([b - a for a, b in zip((0, *ends), (*ends, self.size), strict=True)])
        return tf.split(x, sizes, num=len(ends) + 1)

    def _joined(self, pieces: list[Any], like: Any) -> Any:
        """``pieces`` joined along the members' axis, with ``like``'s static shape (the pieces'
        lengths are known only when the graph runs, and the per-member ops need P)."""
        return tf.ensure_shape(tf.concat(pieces, 0), like.shape)

    def _bn_where(self, mask: str, x: Any, slot: str, training: bool, updates: list) -> Any:
        """``x`` through the BN ``slot`` for the members of ``mask``, as it is for the rest
        (for all: a slot no member uses, which :meth:`_bn_widths` leaves out)."""
        if slot not in self.bn_widths:
            return x
        if self.grouped:
            lo, hi = self._span(mask)
            head, members, tail = self._split(x, lo, hi)
            normalised = self._bn(members, slot, training, updates, (lo, hi))
            return self._joined([head, normalised, tail], x)
        normalised = self._bn(x, slot, training, updates)
        return tf.where(self._mask(self.masks[mask], x) > 0, normalised, x)

    def _bn(
        self, x: Any, slot: str, training: bool, updates: list, span: tuple[Any, Any] | None = None
    ) -> Any:
        """BatchNormalization over every axis but the members' and the last, of the members
        ``span`` (``lo, hi``; None: all)."""
        shape = tf.shape(x)
        flat = tf.reshape(x, [shape[0], -1, x.shape[-1]])
        own = (lambda v: v) if span is None else (lambda v: v[span[0] : span[1]])  # noqa: E731
        if training:
            mean = tf.reduce_mean(flat, axis=1, keepdims=True)
            variance = tf.reduce_mean(tf.square(flat - mean), axis=1, keepdims=True)
            updates.append((slot, span, tf.stop_gradient(mean), tf.stop_gradient(variance)))
        else:
            mean, variance = (own(self.bn[k][slot]) for k in ("moving_mean", "moving_var"))
        inv = tf.math.rsqrt(variance + own(self.bn_epsilon)) * own(self.bn["gamma"][slot])
        return tf.reshape(flat * inv + (own(self.bn["beta"][slot]) - mean * inv), shape)

    def _forward(self, x: Any, training: bool, counter: Any) -> tuple[Any, list]:
        graph = self.graph
        updates: list = []
        x = tf.reshape(x, [tf.shape(x)[0], tf.shape(x)[1], *graph.input_shape])
        if graph.input_bn_after == -1:
            x = self._bn_where("input", x, "input_bn", training, updates)
        values: list[Any] = []
        for index, op in enumerate(graph.ops):
            inputs = [x if i == -1 else values[i] for i in op.inputs]
            y = self._op(op, inputs, training, counter, updates)
            if index == graph.input_bn_after:
                y = self._bn_where("input", y, "input_bn", training, updates)
            values.append(y)
        return values[graph.output], updates

    def _op(
        self, op: GraphOp, inputs: list[Any], training: bool, counter: Any, updates: list
    ) -> Any:
        x = inputs[0]
        if op.kind == "core":
            return self._core(op, x, training, updates)
        if op.kind == "bn":
            return self._bn_where("kept", x, op.name, training, updates)
        if op.kind == "activation":
            return activation_function(op.activation)(x)
        if op.kind == "preact":
            return self._placed(op, x, x, activation_function(op.activation), training, updates)
        if op.kind == "dropout":
            step_counter = counter * self.dropout_stride + op.dropout_index
            return self._dropout(x, step_counter, op.params) if training else x
        return stateless_op(op, inputs)

    def _core(self, op: GraphOp, x: Any, training: bool, updates: list) -> Any:
        """A Dense or convolution, then what follows it by its role."""
        kernel, pointwise = self.weights["kernel"][op.name], self.weights["pointwise"].get(op.name)
        bias = self.weights["bias"][op.name] * self.bias_masks[op.name]
        if op.cls in ("Conv1D", "Conv2D", "DepthwiseConv2D", "SeparableConv2D"):
            one_d = op.cls == "Conv1D"  # a Conv2D over rows of height 1
            shape = [1, *op.kernel_shape] if one_d else op.kernel_shape
            kernels = tf.reshape(kernel, [self.size, *shape])
            if one_d:
                x = tf.expand_dims(x, 2)
            if op.cls in ("DepthwiseConv2D", "SeparableConv2D"):
                z = member_depthwise_conv2d(x, kernels, op.strides, op.padding)
                if pointwise is not None:  # then the 1x1 convolution across channels
                    pointwise = tf.reshape(pointwise, [self.size, 1, 1, *op.pointwise_shape[-2:]])
                    z = member_conv2d(z, pointwise, (1, 1), "valid")
            else:
                z = member_conv2d(x, kernels, op.strides, op.padding)
            z = tf.reshape(tf.reshape(z, [self.size, -1, op.shape[-1]]) + bias, tf.shape(z))
            if one_d:
                z = tf.squeeze(z, 2)
        else:
            z = tf.matmul(x, kernel) + bias
        if op.role == "output":
            return self._bn_where("output", z, "output_bn", training, updates)
        activation = activation_function(op.activation)
        if op.role != "site":
            return activation(z)
        return self._placed(op, z, x, activation, training, updates)

    def _placed(
        self, op: GraphOp, z: Any, x: Any, activation: Any, training: bool, updates: list
    ) -> Any:
        """``activation(z)`` with the BN slot ``op.name`` before it for ``before`` members
        and after it for ``after`` members (a site, or the pre-activation pattern)."""
        if op.name not in self.bn_widths:  # no member places a BN at a site
            return activation(z)
        if self.grouped:  # `before` members, then `after` members, then the rest
            lo_after, lo_rest = self._span("after")
            before, after, rest = self._split(z, lo_after, lo_rest)
            both = tf.concat([before, activation(after)], 0)
            normalised = self._bn(both, op.name, training, updates, (0, lo_rest))
            before, after = tf.split(normalised, tf.stack([lo_after, lo_rest - lo_after]), num=2)
            return self._joined([activation(before), after, activation(rest)], z)
        plain = activation(z)
        # One BN serves both placements: it normalises z for `before` members and act(z)
        # for `after` members.
        before = self._mask(self.masks["before"], z) > 0
        after = self._mask(self.masks["after"], z) > 0
        normalised = self._bn(tf.where(before, z, plain), op.name, training, updates)
        return tf.where(before, activation(normalised), tf.where(after, normalised, plain))

    def _dropout(self, a: Any, counter: Any, noise: tuple[float, ...] = ()) -> Any:
        """Inverted dropout with each member's rate and its hashed mask (one draw per cell
        of the per-row ``noise`` shape, broadcast over its 1s)."""
        shape = tf.shape(a)
        if noise:
            own = [int(a.shape[2 + i]) if n < 0 else int(n) for i, n in enumerate(noise)]
            shape = tf.concat([tf.shape(a)[:2], tf.constant(own, tf.int32)], 0)
        u = hash_uniform(self.seeds, counter, shape)
        keep = tf.cast(u >= self._mask(self.dropout, a), tf.float32)
        return a * keep / (1.0 - self._mask(self.dropout, a))

    def _per_sample_loss(self, logits: Any, labels: Any) -> Any:
        if self.regression:  # Keras' mean_squared_error: the mean over the output axis
            return tf.reduce_mean(tf.square(logits - labels), axis=-1)
        if self.n_classes == 2:
            ce = tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits)
            return tf.reduce_mean(ce, axis=-1)
        return tf.nn.softmax_cross_entropy_with_logits(labels=labels, logits=logits)

    def _correct(self, logits: Any, labels: Any) -> Any:
        """Per sample: 1 where the argmax agrees with the label (a regression: ``mae``)."""
        if self.regression:
            return tf.reduce_mean(tf.abs(logits - labels), axis=-1)
        return tf.cast(tf.equal(tf.argmax(logits, -1), tf.argmax(labels, -1)), tf.float32)

    def _step(self, index: Any) -> tuple[Any, Any]:
        """One SGD step on the batch ``index`` (``[P, batch]`` row numbers)."""
        x = tf.gather(self.x_train, index)
        labels = tf.gather(self.onehot, index)
        with tf.GradientTape() as tape:
            logits, updates = self._forward(x, True, self.iterations)
            loss = tf.reduce_mean(self._per_sample_loss(logits, labels), axis=1)  # [P]
            finite = tf.math.is_finite(loss)
            counted = tf.where(self.active & finite, loss, tf.zeros_like(loss))
            total = tf.reduce_sum(counted)
        # Zero for a parameter nothing reaches: none does in the engine's own graphs, but the
        # step profiler (bench) removes BN, which leaves its parameters unreached.
        grads = tape.gradient(total, self.params, unconnected_gradients="zero")
        # A member's gradients are finite iff their sum is (a NaN or inf anywhere makes the
        # sum non-finite); one sum per member is far cheaper than an elementwise test. A sum
        # that overflows float32 freezes a member whose update would have been absurd anyway.
        grads_finite = tf.ones_like(finite)
        for g in grads:
            grads_finite &= tf.math.is_finite(tf.reduce_sum(tf.reshape(g, [tf.shape(g)[0], -1]), 1))
        live3 = tf.reshape(self.active & finite & grads_finite, [-1, 1, 1])
        self.apply_gradients(grads, live3)
        members = tf.reshape(tf.range(self.size), [-1, 1, 1])
        for slot, span, mean, variance in updates:
            m, live = self.bn_momentum, live3
            if span is not None:  # a slice's statistics, placed among every member's
                live = live3 & (members >= span[0]) & (members < span[1])
                around = [[span[0], self.size - span[1]], [0, 0], [0, 0]]
                mean, variance = tf.pad(mean, around), tf.pad(variance, around)
            mm, mv = self.bn["moving_mean"][slot], self.bn["moving_var"][slot]
            mm.assign(tf.where(live, mm * m + mean * (1.0 - m), mm))
            mv.assign(tf.where(live, mv * m + variance * (1.0 - m), mv))
        self.active.assign(self.active & finite)
        self.iterations.assign_add(1)
        rows = tf.cast(tf.shape(index)[1], tf.float32)
        correct = tf.reduce_sum(self._correct(logits, labels), axis=1)
        return loss * rows, correct

    def _apply_gradients(self, grads: list[Any], live3: Any) -> None:
        """Nesterov SGD with inverse-time decay, for live members only (``live3``)."""
        t = tf.cast(self.iterations, tf.float32)
        lr = tf.reshape(self.lr / (1.0 + self.network.lr_decay * t), [-1, 1, 1])
        mu = self.network.sgd_momentum
        for param, velocity, grad in zip(self.params, self.velocities, grads, strict=True):
            grad = tf.where(live3, grad, tf.zeros_like(grad))
            new_velocity = mu * velocity - lr * grad
            velocity.assign(tf.where(live3, new_velocity, velocity))
            param.assign(tf.where(live3, param + mu * new_velocity - lr * grad, param))

    def _train_steps(self, batches: Any) -> tuple[Any, Any]:
        """The steps in ``batches`` (``[steps, P, batch]``); sums of loss and hits."""
        zeros = tf.zeros([tf.shape(batches)[1]], tf.float32)

        def step(i: Any, loss_sum: Any, correct_sum: Any) -> tuple[Any, Any, Any]:
            loss, correct = self._step(batches[i])
            return i + 1, loss_sum + loss, correct_sum + correct

        steps = tf.shape(batches)[0]
        _, loss_sum, correct_sum = tf.while_loop(
            lambda i, *_: i < steps, step, (tf.constant(0), zeros, zeros)
        )
        return loss_sum, correct_sum

    def run_epoch(self, order: np.ndarray, batch: int) -> tuple[Any, Any]:
        """One epoch over ``order`` (``[P, n_train]``): the full batches in the compiled loop,
        the last partial one in graph mode (compiling it costs more than it saves)."""
        full_steps = order.shape[1] // batch
        head = order[:, : full_steps * batch].reshape(len(order), full_steps, batch)
        loss_sum, correct_sum = self.train_epoch(tf.constant(head.transpose(1, 0, 2)))
        if order.shape[1] > full_steps * batch:
            tail = order[:, full_steps * batch :][None]
            extra_loss, extra_correct = self.train_steps_partial(tf.constant(tail))
            loss_sum += extra_loss
            correct_sum += extra_correct
        return loss_sum, correct_sum

    def _evaluate(self, x: Any, labels: Any) -> tuple[Any, Any]:
        xs = tf.broadcast_to(x[None], tf.concat([[self.size], tf.shape(x)], 0))
        logits, _ = self._forward(xs, False, tf.constant(0, tf.int64))
        labels = tf.broadcast_to(labels[None], tf.shape(logits))
        loss = tf.reduce_mean(self._per_sample_loss(logits, labels), axis=1)
        accuracy = tf.reduce_mean(self._correct(logits, labels), axis=1)
        return loss, accuracy

    def member_weights(self, p: int) -> dict[str, np.ndarray]:
        """Member ``p``'s weights in Keras' shapes: ``kernel_``, ``pointwise_``, ``bias_<layer>``
        (zero where masked) and ``gamma_``, ``beta_``, ``moving_mean_``, ``moving_var_<slot>``."""
        out: dict[str, np.ndarray] = {}
        for name, op in self.cores.items():
            for which, (_, shape, _) in _weights(op).items():
                out[f"{which}_{name}"] = self.weights[which][name][p].numpy().reshape(shape)
            used = float(self.bias_masks[name][p, 0, 0].numpy())
            out[f"bias_{name}"] = out[f"bias_{name}"] * used  # a copy: .numpy() may share memory
        for key, variables in self.bn.items():
            for slot, variable in variables.items():
                out[f"{key}_{slot}"] = variable[p, 0].numpy()
        return out
