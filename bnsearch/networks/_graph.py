"""The layer graph the population engine interprets: every network it trains, read once
(placement aside) by the ``--model`` rule; a built-in family or a ``--builder`` from its
``none`` model. Which layers have a form: the docs, *Your model*, "Which engine trains it".

Op kinds: ``core`` (a Dense or convolution: a site, the output or plain), ``activation``,
``preact`` (a BN no core feeds, then an activation) and the values of ``_KIND_OF``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

import numpy as np

from bnsearch.errors import ConfigError
from bnsearch.networks._builder import NetworkSettings, build_model
from bnsearch.networks._rewrite import (
    ModelPlan,
    Node,
    activation_text,
    fused_activation,
    load_plan,
    plan_of_model,
    with_seed,
)
from bnsearch.trial import ACTIVATIONS, BNConfig

_KIND_OF = {
    "MaxPooling2D": "max_pool",
    "AveragePooling2D": "avg_pool",
    "GlobalAveragePooling1D": "global_avg_pool",
    "GlobalAveragePooling2D": "global_avg_pool",
    "GlobalMaxPooling1D": "global_max_pool",
    "Permute": "permute",
    "Flatten": "flatten",
    "Reshape": "reshape",
    "Add": "add",
    "Multiply": "multiply",
    "Concatenate": "concat",
    "ZeroPadding2D": "zero_pad",
    "Cropping2D": "crop",
    "GlobalMaxPooling2D": "global_max_pool",
    "Rescaling": "rescale",
    "Normalization": "normalize",
    "Dropout": "dropout",
    "BatchNormalization": "bn",
}
#: Roles read with another call (a site's, the output's, a pre-activation's).
_SKIPPED = ("removed_bn", "site_activation", "output_activation", "preact_bn")
#: The activations the engine computes (Keras' own functions, by name).
FORM_ACTIVATIONS = (
    *ACTIVATIONS, "swish", "silu", "hard_sigmoid", "hard_silu", "hard_swish", "relu6",
    "softplus", "softsign", "leaky_relu", "mish",
)  # fmt: skip
#: The linear layers the engine computes: ``x @ W``, a convolution, a depthwise one.
_CORE_FORMS = ("Dense", "Conv1D", "Conv2D", "DepthwiseConv2D", "SeparableConv2D")


@dataclass(frozen=True)
class GraphOp:
    """One op of the graph; fields a kind does not use keep their defaults."""

    name: str  # the Keras layer's name (a member's Keras model is matched by it)
    kind: str
    inputs: tuple[int, ...]
    shape: tuple[int, ...]  # the output's shape per row
    role: str = ""  # a core's: "site", "output" or "plain"
    cls: str = ""  # a core's Keras class (one of _CORE_FORMS)
    activation: str = "linear"  # a site's, a plain core's fused one, an activation op's
    use_bias: bool = True  # the layer's own
    feeds_kept_bn: bool = False  # a plain core whose only consumer is a BN the model keeps
    kernel_shape: tuple[int, ...] = ()  # as Keras holds it ([kh, kw, in, out] for Conv2D)
    pointwise_shape: tuple[int, ...] = ()  # a SeparableConv2D's 1x1 kernel ([1, 1, in, out])
    strides: tuple[int, int] = (1, 1)
    padding: str = "valid"
    pool_size: tuple[int, int] = (1, 1)
    kernel_initializer: str = ""  # the serialized initialiser, as JSON
    bias_initializer: str = ""
    pointwise_initializer: str = ""  # a SeparableConv2D's
    seed_key: tuple[str, int] = ("dense", 0)  # layer_seed(seed, *seed_key)
    dropout_index: int = 0  # the k-th Dropout: its hash counter
    # zero_pad/crop: top, bottom, left, right; rescale: scale, offset; normalize: means,
    # then variances; permute: dims; dropout: the per-row noise shape (-1: the row's size)
    params: tuple[float, ...] = ()

    @property
    def fan_in(self) -> int:
        """Rows of the kernel as the engine holds it (a conv's patch size)."""
        return math.prod(self.kernel_shape[:-1])


@dataclass(frozen=True)
class LayerGraph:
    """A network the population engine can train; ``input`` placement puts its BN after op
    ``input_bn_after`` (``-1``: on the rows)."""

    ops: tuple[GraphOp, ...]
    input_shape: tuple[int, ...]
    output: int
    input_bn_after: int = -1

    @property
    def cores(self) -> tuple[int, ...]:
        return tuple(i for i, op in enumerate(self.ops) if op.kind == "core")

    @property
    def convolutions(self) -> int:
        """How many of its cores are convolutions (every core but a Dense)."""
        return sum(1 for op in self.ops if op.kind == "core" and op.cls != "Dense")

    @property
    def input_channels(self) -> int:
        """The width the input BN normalises (the last axis where it sits)."""
        after = self.input_bn_after
        return self.ops[after].shape[-1] if after >= 0 else self.input_shape[-1]

    @property
    def activation_width(self) -> int:
        """Float32 values per row a forward pass holds (an upper bound)."""
        return sum(map(_values, self.ops))

    @property
    def widest(self) -> int:
        """Float32 values per row of the widest op."""
        return max(map(_values, self.ops))

    @property
    def parameters(self) -> int:
        return sum(math.prod(self.ops[i].kernel_shape) + self.ops[i].shape[-1] for i in self.cores)

    def with_site_activation(self, activation: str | None) -> LayerGraph:
        """The graph with every site's activation replaced."""
        if not activation:
            return self
        ops = (replace(op, activation=activation) if op.role == "site" else op for op in self.ops)
        return replace(self, ops=tuple(ops))


def _values(op: GraphOp) -> int:
    """Float32 values per row of ``op``'s output, and a Conv2D's im2col patches."""
    patches = math.prod(op.shape[:-1]) * op.fan_in if op.cls == "Conv2D" else 0
    return math.prod(op.shape) + patches


def network_graph(
    network: NetworkSettings,
    input_shape: tuple[int, ...] | None = None,
    n_classes: int | None = None,
) -> LayerGraph | str:
    """``network`` as a layer graph, or why the population engine cannot train it (one
    phrase); a built-in family needs the rows' ``input_shape`` and ``n_classes``."""
    if network.kind == "model":
        if network.keep_optimizer:
            return "its own optimizer (keep_optimizer)"
        return graph_of(load_plan(network.model or ""))
    if input_shape is None or n_classes is None:
        raise ValueError(f"a {network.kind} network's graph needs the rows' shape and the classes")
    return _built_graph(network, tuple(int(n) for n in input_shape), int(n_classes))


@lru_cache(maxsize=32)
def _built_graph(
    network: NetworkSettings, input_shape: tuple[int, ...], n_classes: int
) -> LayerGraph | str:
    custom = network.kind == "custom"
    # A family built with tanh: every hidden layer reads as a site (`linear` ones are too).
    shaped = network if custom else replace(network, activation="tanh")
    model = build_model(BNConfig("none"), input_shape, n_classes, shaped, seed=0, compile=False)
    if custom:
        try:
            plan = plan_of_model(f"(the builder {network.builder}'s model)", model)
        except ConfigError as error:  # no site, a shared layer: the Keras engine trains it
            return f"a network from `builder` that cannot be read as a --model ({error})"
        return graph_of(plan)
    graph = graph_of(plan_of_model(f"the {network.kind} family", model))
    return graph if isinstance(graph, str) else graph.with_site_activation(network.activation)


def seeded_initializer(serialized: str, seed: int) -> Any:
    """The Keras initialiser a core op holds (as JSON), with ``seed`` where it takes one."""
    import keras

    value = json.loads(serialized)
    if value is None:
        return keras.initializers.Zeros()
    return keras.initializers.deserialize(with_seed(value, seed))


# --- reading a plan -----------------------------------------------------------------------


def graph_of(plan: ModelPlan) -> LayerGraph | str:
    """``plan`` as a layer graph, or why not (the first layer the engine has no form for)."""
    ops, index_of, missing = _ops(plan, stop=True)
    if missing:
        return missing[0]
    output = index_of[plan.output]
    if ops[output].cls != "Dense" or len(ops[output].shape) != 1:
        return f"its output layer {plan.nodes[plan.output].name!r} is not a Dense on flat rows"
    if plan.output_activation not in ("softmax", "linear"):
        return f"output activation {plan.output_activation}"
    input_bn_after = index_of[plan.flatten_first] if plan.flatten_first is not None else -1
    if None in plan.input_shape:
        return f"an input of shape {plan.input_shape} (a dimension of unknown size)"
    shape = tuple(int(n or 0) for n in plan.input_shape)
    return LayerGraph(tuple(ops), shape, output, input_bn_after)


def layers_without_form(plan: ModelPlan) -> list[str]:
    """Every layer call of ``plan`` without a form, as ``Class 'name' (reason)``."""
    return _ops(plan, stop=False)[2]


def _ops(plan: ModelPlan, stop: bool) -> tuple[list[GraphOp], dict[int, int], list[str]]:
    """``plan``'s ops, each node's op (a skipped node: its input's) and the layers without
    a form."""
    index_of: dict[int, int] = {-1: -1}
    ops: list[GraphOp] = []
    missing: list[str] = []
    dropouts = 0
    for node in plan.nodes:
        linear = node.cls == "Activation" and _plain(node) == "linear"
        if node.role in _SKIPPED or node.cls == "InputLayer" or linear:
            index_of[node.index] = index_of.get(node.inputs[0], -1) if node.inputs else -1
            continue
        op = _op(plan, node, tuple(index_of.get(i, -1) for i in node.inputs), dropouts)
        if isinstance(op, str):
            missing.append(f"{node.cls} {node.name!r}" + (f" ({op})" if op else ""))
            if stop:
                break
            continue
        dropouts += op.kind == "dropout"
        index_of[node.index] = len(ops)
        ops.append(op)
    return ops, index_of, missing


def _plain(node: Node) -> str:
    """An activation layer's function if the engine has it, else ""."""
    text = activation_text(node)
    return text if text in (*FORM_ACTIVATIONS, "softmax") or text.startswith("relu(") else ""


# long because each layer kind is one short branch; splitting them scatters the rule.
def _op(plan: ModelPlan, node: Node, inputs: tuple[int, ...], dropouts: int) -> GraphOp | str:
    """``node`` as an op, or why the engine has no form for it ("" if only its class)."""
    config = node.config
    shape = tuple(int(n) for n in node.layer.output.shape[1:])
    base = GraphOp(node.name, "", inputs, shape)
    if node.cls in _CORE_FORMS:
        return _core(plan, node, base)
    if node.cls in ("Activation", "ReLU", "ELU", "LeakyReLU"):
        if not (activation := _plain(node)):
            return ""
        if node.role == "preact_activation":  # named as its BN: the member's BN slot
            bn_name = plan.nodes[plan.preacts[node.index]].name
            return replace(base, name=bn_name, kind="preact", activation=activation)
        return replace(base, kind="activation", activation=activation)
    if (kind := _KIND_OF.get(node.cls)) is None:
        return ""
    if config.get("data_format", "channels_last") not in (None, "channels_last"):
        return "channels_first"
    if kind == "dropout":
        noise = config.get("noise_shape")
        if noise is not None and len(noise) != len(shape) + 1:
            return "a noise_shape of another rank"
        per_row = () if noise is None else tuple(-1.0 if n is None else float(n) for n in noise[1:])
        return replace(base, kind=kind, dropout_index=dropouts, params=per_row)
    if kind == "normalize":
        axis = config.get("axis")
        last = tuple(axis) in ((-1,), (len(shape),)) if axis is not None else False
        if not last or config.get("invert"):
            return "not over the last axis, or inverted"
        given: tuple[Any, Any] = (config.get("mean"), config.get("variance"))
        stats = given if given[0] is not None else node.layer.get_weights()[:2]
        mean, variance = (np.broadcast_to(np.ravel(v), shape[-1:]).tolist() for v in stats)
        return replace(base, kind=kind, params=(*mean, *variance))
    if kind == "bn":
        plain = config.get("axis") in (-1, [-1], len(shape)) and config.get("center", True)
        if not plain or not config.get("scale", True) or config.get("renorm"):
            return "not a plain BatchNormalization over the last axis"
    if kind in ("max_pool", "avg_pool"):
        pool = tuple(config["pool_size"])
        strides = tuple(config.get("strides") or pool)
        padding = str(config.get("padding", "valid"))
        return replace(base, kind=kind, pool_size=pool, strides=strides, padding=padding)
    if kind in ("global_avg_pool", "global_max_pool") and config.get("keepdims"):
        return "keepdims"
    if kind == "permute":
        return replace(base, kind=kind, params=tuple(float(d) for d in config["dims"]))
    if kind in ("add", "multiply", "concat") and len(inputs) < 2:
        return "fewer than two inputs"
    if kind == "concat" and config.get("axis", -1) not in (-1, len(shape)):
        return "not on the last axis"
    if kind in ("zero_pad", "crop"):
        key = "padding" if kind == "zero_pad" else "cropping"
        (top, bottom), (left, right) = config[key]
        return replace(base, kind=kind, params=(top, bottom, left, right))
    if kind == "rescale":
        scale, offset = config.get("scale", 1.0), config.get("offset", 0.0)
        if not isinstance(scale, (int, float)) or not isinstance(offset, (int, float)):
            return "a scale or offset per channel"
        return replace(base, kind=kind, params=(float(scale), float(offset)))
    return replace(base, kind=kind)


def _core(plan: ModelPlan, node: Node, base: GraphOp) -> GraphOp | str:
    config = node.config
    for key, value in config.items():  # the engine has no regulariser or constraint
        if key.endswith(("_regularizer", "_constraint")) and value is not None:
            return key.replace("_", " ")
    if node.cls != "Dense":
        dilated = np.any(np.asarray(config.get("dilation_rate", 1)) != 1)
        if dilated or config.get("groups", 1) != 1 or config.get("data_format") == "channels_first":
            return "a dilated, grouped or channels-first convolution"
        if config.get("padding") == "causal":
            return "causal padding"
    role = "plain"
    activation = fused_activation(config)
    if node.index in plan.sites:
        role, activation = "site", plan.sites[node.index].activation
    elif node.index == plan.output:
        role, activation = "output", plan.output_activation
    known = activation in FORM_ACTIVATIONS or activation.startswith("relu(")
    if not known and not (role == "output" and activation == "softmax"):
        return f"activation {activation}"
    separable = node.cls == "SeparableConv2D"  # a depthwise kernel, then a pointwise one
    kernel = node.layer.depthwise_kernel if separable else node.layer.kernel
    pointwise = node.layer.pointwise_kernel.shape if separable else ()
    strides = tuple(config.get("strides", (1, 1)))
    return replace(
        base,
        kind="core",
        role=role,
        cls=node.cls,
        activation=activation,
        use_bias=bool(config.get("use_bias", True)),
        feeds_kept_bn=node.index in plan.feeding_kept_bn,
        kernel_shape=tuple(int(n) for n in kernel.shape),
        pointwise_shape=tuple(int(n) for n in pointwise),
        strides=(1, *strides) if node.cls == "Conv1D" else strides,  # Conv1D: rows of height 1
        padding=str(config.get("padding", "valid")),
        kernel_initializer=json.dumps(
            config.get("kernel_initializer", config.get("depthwise_initializer")), sort_keys=True
        ),
        bias_initializer=json.dumps(config.get("bias_initializer"), sort_keys=True),
        pointwise_initializer=json.dumps(config.get("pointwise_initializer"), sort_keys=True),
        seed_key=plan.seeds[node.index],
    )
