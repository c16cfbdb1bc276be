"""The one network builder: the thread's MLP (the cnn family, a builder, your ``--model``)
with BatchNormalization placed by a BNConfig; every engine and backend builds its networks
here."""

from __future__ import annotations

import copy
import re
from dataclasses import asdict, dataclass
from typing import Any

from bnsearch.errors import ConfigError
from bnsearch.networks._common import bn_layer, hidden_layer_order, import_or_refuse
from bnsearch.networks._rewrite import (
    check_model_fits,
    load_plan,
    model_digest,
    rewrite_model,
    with_seed,
)
from bnsearch.trial import (
    ACTIVATIONS,
    POSITIVE_INT,
    POSITIVE_INTS,
    BNConfig,
    Rule,
    check,
    in_range,
    layer_seed,
    one_of,
)

INITIALIZERS = ("glorot_uniform", "uniform", "he_uniform")
_MODEL_SPEC = re.compile(r"[^:]+\.keras|[\w.]+:\w+|[^:]+\.py:\w+")
FAMILIES = ("mlp", "cnn")
#: The fields a network's fingerprint leaves out, by kind: moot for it, or unused (so other
#: studies keep their fingerprint).
_MOOT = {
    "model": (
        "hidden_units", "activation", "initializer", "family", "conv_filters", "kernel_size",
        "builder",
    ),
    "mlp": ("family", "conv_filters", "kernel_size", "builder", "model", "keep_optimizer"),
    "cnn": ("model", "keep_optimizer"),
    "custom": ("model", "keep_optimizer"),
}  # fmt: skip


_NETWORK_RULES: dict[str, Rule] = {
    "hidden_units": POSITIVE_INTS,
    "activation": one_of(ACTIVATIONS),
    "initializer": one_of(INITIALIZERS),
    "batch_size": POSITIVE_INT,
    "epochs": POSITIVE_INT,
    "validation_split": in_range(0.0, 1.0, low_open=True, high_open=True),
    "family": one_of(FAMILIES, ', or set `builder = "module:function"` for your own network'),
    "conv_filters": POSITIVE_INTS,
    "kernel_size": POSITIVE_INT,
    "builder": Rule(
        lambda v: isinstance(v, str) and re.fullmatch(r"[\w.]+:\w+", v) is not None,
        "'module:function' (e.g. 'mynets:build')",
    ),
    "model": Rule(
        lambda v: isinstance(v, str) and _MODEL_SPEC.fullmatch(v) is not None,
        "a .keras file, 'module:name' or 'file.py:name' (a Keras model or a function "
        "returning one)",
    ),
}


@dataclass(frozen=True)
class NetworkSettings:
    """Everything about the network and its training that is not searched over.

    Validated on construction. A study file's ``[network]`` table and the CLI's network
    flags set these fields (the docs' *Commands and settings* reference lists each with its
    flag); ``sgd_momentum`` (SGD's Nesterov momentum) and ``lr_decay`` (the learning rate
    per update is ``lr / (1 + lr_decay * t)``) have no flag. The defaults are the thread's
    network and training.

    Raises:
        ConfigError: a value is out of its range, or ``builder`` and ``model`` are both set.

    Examples:
        >>> import bnsearch
        >>> network = bnsearch.NetworkSettings(family="cnn", conv_filters=(8,), epochs=5)
        >>> network.kind, network.images, network.hidden_units
        ('cnn', True, (64, 64))
        >>> bnsearch.NetworkSettings(epochs=0)
        Traceback (most recent call last):
        ...
        bnsearch.errors.ConfigError: `epochs` must be a positive integer, but got 0.
    """

    hidden_units: tuple[int, ...] = (64, 64)
    activation: str = "tanh"
    initializer: str = "glorot_uniform"
    batch_size: int = 16
    epochs: int = 20
    validation_split: float = 0.2
    sgd_momentum: float = 0.9
    lr_decay: float = 1e-6
    family: str = "mlp"
    conv_filters: tuple[int, ...] = (16, 32)
    kernel_size: int = 3
    builder: str | None = None
    model: str | None = None
    keep_optimizer: bool = False

    def __post_init__(self) -> None:
        for name in ("hidden_units", "conv_filters"):
            if isinstance(getattr(self, name), list):
                object.__setattr__(self, name, tuple(getattr(self, name)))
        check(self, _NETWORK_RULES)
        if self.builder and self.model:
            raise ConfigError("`builder` and `model` both name your own network; give one of them.")
        if self.keep_optimizer and not self.model:
            raise ConfigError("`keep_optimizer` applies to a --model network; set `model` too.")

    @property
    def kind(self) -> str:
        """``mlp``, ``cnn``, ``custom`` (a ``builder`` is set) or ``model`` (a ``model``)."""
        if self.model:
            return "model"
        return "custom" if self.builder else self.family

    @property
    def images(self) -> bool:
        """Whether the network takes image-shaped rows (height × width × channels):
        ``sklearn:digits`` is then loaded as 8×8×1 images."""
        if self.kind == "model":
            return len(load_plan(self.model or "").input_shape) == 3
        return self.kind == "cnn"

    def as_params(self) -> dict[str, Any]:
        params = {k: v for k, v in asdict(self).items() if k not in _MOOT[self.kind]}
        for name in ("hidden_units", "conv_filters"):
            if name in params:
                params[name] = ",".join(map(str, params[name]))
        if self.kind == "model":
            params["model_sha256"] = model_digest(self.model or "")
        return params


def build_model(
    config: BNConfig,
    input_shape: int | tuple[int, ...],
    n_classes: int,
    network: NetworkSettings | None = None,
    seed: int = 0,
    compile: bool = True,
) -> Any:
    """Build (and by default compile) the Keras model for one trial.

    Weights and dropout masks derive from ``seed``: Dense kernels depend only on the seed and
    the layer's position, so two placements with the same seed start from the same Dense
    weights (the paired design relies on this).

    Args:
        config: the trial's BN configuration (placement, momentum, epsilon, ``use_bias``,
            dropout, learning rate).
        input_shape: the features per row (an int), or a row's shape (images).
        n_classes: the classes (a softmax output); 1 is a regression network (one linear
            output, mean squared error).
        network: the network's settings: the thread's MLP by default, the CNN family, a
            ``builder`` or your own ``model`` rewritten into ``config``'s placement.
        seed: the trial's seed.
        compile: compile with the thread's SGD (Nesterov momentum 0.9, ``config``'s
            learning rate) and the task's loss.

    Returns:
        A ``keras.Model``.

    Raises:
        ConfigError: the network cannot be built for these shapes (the message says why).

    Examples:
        >>> import bnsearch
        >>> model = bnsearch.build_model(bnsearch.BNConfig(placement="before"), 14, 2)
        >>> names = [type(layer).__name__ for layer in model.layers]
        >>> names[:3]
        ['Dense', 'BatchNormalization', 'Activation']
    """
    network = network or NetworkSettings()
    shape = (input_shape,) if isinstance(input_shape, int) else tuple(input_shape)
    if network.kind == "model":
        plan = load_plan(network.model or "")
        check_model_fits(plan, shape, n_classes)
        model = rewrite_model(plan, config, seed)
    elif network.kind == "custom":
        model = _custom_model(network.builder or "", config, shape, n_classes, seed)
    else:
        model = _planned_model(config, shape, n_classes, network, seed)
    if compile:
        compile_model(model, config, n_classes, network)
    return model


def _planned_model(
    config: BNConfig, shape: tuple[int, ...], n_classes: int, network: NetworkSettings, seed: int
) -> Any:
    """The built-in family as a Sequential; the k-th conv's or Dense's kernel is seeded from
    ``layer_seed(seed, kind, k)``."""
    import keras

    layers: list[Any] = [keras.Input(shape=shape, name="features")]
    if network.kind == "cnn":
        if len(shape) not in (2, 3):
            raise ConfigError(
                f"the cnn family needs image-shaped rows (height × width [× channels]), but the "
                f"data's rows have shape {tuple(int(n) for n in shape)}; use sklearn:digits, an "
                '.npz of images, or family = "mlp".'
            )
        if len(shape) == 2:  # grey images without a channel axis
            layers.append(keras.layers.Reshape((*shape, 1), name="add_channel"))
    elif len(shape) > 1:
        layers.append(keras.layers.Flatten(name="flatten"))
    activation = config.activation or network.activation
    order = hidden_layer_order(config.placement)
    bias = config.use_bias or order[1] != "bn"  # a layer drops its bias only before a BN

    def options(kind: str, k: int, name: str, use_bias: bool = bias) -> dict[str, Any]:
        initializer = with_seed(network.initializer, layer_seed(seed, kind, k))
        return {"use_bias": use_bias, "kernel_initializer": initializer, "name": name}

    def placed(layer: Any, bn_name: str, activation_name: str) -> None:
        layers.append(layer)
        for step in order[1:]:
            if step == "bn":
                layers.append(bn_layer(config, bn_name))
            else:
                layers.append(keras.layers.Activation(activation, name=activation_name))

    if config.placement == "input":
        layers.append(bn_layer(config, "input_bn"))
    for k, filters in enumerate(network.conv_filters if network.kind == "cnn" else ()):
        options_k = options("conv", k, f"conv_{k + 1}")
        conv = keras.layers.Conv2D(filters, network.kernel_size, padding="same", **options_k)
        placed(conv, f"conv_bn_{k + 1}", f"{activation}_conv_{k + 1}")
        layers.append(keras.layers.MaxPooling2D(2, padding="same", name=f"pool_{k + 1}"))
    if network.kind == "cnn":
        layers.append(keras.layers.Flatten(name="flatten"))
    for k, units in enumerate(network.hidden_units):
        dense = keras.layers.Dense(units, **options("dense", k, f"dense_{k + 1}"))
        placed(dense, f"bn_{k + 1}", f"{activation}_{k + 1}")
        seeded = layer_seed(seed, "dropout", k + 1)
        layers.append(keras.layers.Dropout(config.dropout, seed=seeded, name=f"dropout_{k + 1}"))
    before_output = config.placement == "before_output"
    k = len(network.hidden_units)
    output = options("dense", k, "output_dense", config.use_bias or not before_output)
    layers.append(keras.layers.Dense(n_classes, **output))
    if before_output:
        layers.append(bn_layer(config, "output_bn"))
    if n_classes != 1:
        layers.append(keras.layers.Activation("softmax", name="softmax"))
    family = "thread_mlp" if network.kind == "mlp" else "cnn"
    return keras.Sequential(layers, name=f"{family}_{config.placement}")


def _custom_model(
    spec: str, config: BNConfig, shape: tuple[int, ...], n_classes: int, seed: int
) -> Any:
    import keras

    module_name, _, function_name = spec.partition(":")
    module = import_or_refuse(module_name, f"the network builder {spec!r}")
    function = getattr(module, function_name, None)
    if not callable(function):
        raise ConfigError(f"{module_name} has no function {function_name!r} (builder {spec!r}).")
    model = function(config, shape, n_classes, seed)
    if not isinstance(model, keras.Model):
        raise ConfigError(
            f"the builder {spec!r} returned {type(model).__name__}, not a Keras model."
        )
    if tuple(model.output_shape[1:]) != (n_classes,):
        ending = "no activation (regression)" if n_classes == 1 else "a softmax"
        raise ConfigError(
            f"the builder {spec!r} returned a model with output shape {model.output_shape}; it "
            f"must end in Dense({n_classes}) with {ending}."
        )
    return model


def compile_model(model: Any, config: BNConfig, n_classes: int, network: NetworkSettings) -> None:
    """The study's optimizer (or the ``--model``'s own) and the task's loss and metric."""
    import keras

    if network.kind == "model" and network.keep_optimizer:
        plan = load_plan(network.model or "")
        if plan.optimizer is None:
            raise ConfigError(
                f"keep_optimizer is set but --model {plan.spec} was not compiled with an "
                "optimizer; compile it (model.compile(optimizer=...)) or unset keep_optimizer."
            )
        serialized = copy.deepcopy(plan.optimizer)  # the model's own, fresh, at the trial's rate
        serialized.setdefault("config", {})["learning_rate"] = config.learning_rate
        optimizer = keras.optimizers.deserialize(serialized)
    else:
        schedule = keras.optimizers.schedules.InverseTimeDecay(
            initial_learning_rate=config.learning_rate, decay_steps=1, decay_rate=network.lr_decay
        )
        optimizer = keras.optimizers.SGD(
            learning_rate=schedule, momentum=network.sgd_momentum, nesterov=True
        )
    if n_classes == 1:
        model.compile(optimizer=optimizer, loss="mean_squared_error", metrics=["mae"])
        return
    loss = "binary_crossentropy" if n_classes == 2 else "categorical_crossentropy"
    model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"])
