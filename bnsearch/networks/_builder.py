"""The one network builder: the thread's MLP (the cnn family, a builder, your ``--model``)
with BatchNormalization placed by a BNConfig; every engine and backend builds its networks
here."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from bnsearch.errors import ConfigError
from bnsearch.networks._common import hidden_layer_order, import_or_refuse
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
            from bnsearch.networks._rewrite import load_plan

            return len(load_plan(self.model or "").input_shape) == 3
        return self.kind == "cnn"

    def as_params(self) -> dict[str, Any]:
        params = asdict(self)
        params["hidden_units"] = ",".join(map(str, self.hidden_units))
        params["conv_filters"] = ",".join(map(str, self.conv_filters))
        if self.kind == "model":  # the model's own layers; what the built-ins set is moot
            from bnsearch.networks._rewrite import model_digest

            for name in ("hidden_units", "activation", "initializer", "family", "conv_filters"):
                del params[name]
            del params["kernel_size"], params["builder"]
            params["model_sha256"] = model_digest(self.model or "")
            return params
        # absent unless used, so other studies keep their network fingerprint
        del params["model"], params["keep_optimizer"]
        if self.kind == "mlp":
            for name in ("family", "conv_filters", "kernel_size", "builder"):
                del params[name]
        return params


def layer_plan(
    config: BNConfig, network: NetworkSettings, regression: bool = False
) -> list[tuple[str, str]]:
    """The built-in network as ``(kind, name)`` pairs in order."""
    if network.kind in ("custom", "model"):
        raise ConfigError(
            f"a network from `{'builder' if network.kind == 'custom' else 'model'}` has no "
            "layer plan of bnsearch's own."
        )
    activation = config.activation or network.activation
    plan: list[tuple[str, str]] = []
    if config.placement == "input":
        plan.append(("bn", "input_bn"))
    order = hidden_layer_order(config.placement)

    def placed(core: str, name: str, bn_name: str, activation_name: str) -> None:
        names = {"layer": (core, name), "bn": ("bn", bn_name)}
        names["activation"] = ("activation", activation_name)
        plan.extend(names[step] for step in order)

    if network.kind == "cnn":
        for i in range(1, len(network.conv_filters) + 1):
            placed("conv", f"conv_{i}", f"conv_bn_{i}", f"{activation}_conv_{i}")
            plan.append(("pool", f"pool_{i}"))
        plan.append(("flatten", "flatten"))
    for i in range(1, len(network.hidden_units) + 1):
        placed("dense", f"dense_{i}", f"bn_{i}", f"{activation}_{i}")
        plan.append(("dropout", f"dropout_{i}"))
    plan.append(("dense", "output_dense"))
    if config.placement == "before_output":
        plan.append(("bn", "output_bn"))
    if not regression:
        plan.append(("softmax", "softmax"))
    return plan


def initializer(name: str, seed: int) -> Any:
    import keras

    if name == "uniform":
        return keras.initializers.RandomUniform(-0.05, 0.05, seed=seed)
    if name == "he_uniform":
        return keras.initializers.HeUniform(seed=seed)
    return keras.initializers.GlorotUniform(seed=seed)


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
        from bnsearch.networks._rewrite import check_model_fits, load_plan, rewrite_model

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
    import keras

    plan = layer_plan(config, network, regression=n_classes == 1)
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
    widths = [*network.hidden_units, n_classes]
    activation = config.activation or network.activation
    seen = {"conv": 0, "dense": 0}
    for index, (kind, name) in enumerate(plan):
        feeds_bn = index + 1 < len(plan) and plan[index + 1][0] == "bn"
        bias = config.use_bias or not feeds_bn  # only a layer feeding a BN may drop its bias
        if kind in seen:  # the k-th conv or dense: its kernel from layer_seed(seed, kind, k)
            k = seen[kind]
            seen[kind] += 1
            init = initializer(network.initializer, layer_seed(seed, kind, k))
            options = {"use_bias": bias, "kernel_initializer": init, "name": name}
            if kind == "conv":
                filters, size = network.conv_filters[k], network.kernel_size
                layer = keras.layers.Conv2D(filters, size, padding="same", **options)
            else:
                layer = keras.layers.Dense(widths[k], **options)
        elif kind == "pool":
            layer = keras.layers.MaxPooling2D(2, padding="same", name=name)
        elif kind == "flatten":
            layer = keras.layers.Flatten(name=name)
        elif kind == "bn":
            layer = keras.layers.BatchNormalization(
                axis=-1, momentum=config.momentum, epsilon=config.epsilon, name=name
            )
        elif kind == "dropout":
            dropout_seed = layer_seed(seed, "dropout", seen["dense"])
            layer = keras.layers.Dropout(config.dropout, seed=dropout_seed, name=name)
        else:  # a hidden layer's activation, or the output's softmax
            layer = keras.layers.Activation(
                activation if kind == "activation" else "softmax", name=name
            )
        layers.append(layer)
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
        from bnsearch.networks._rewrite import kept_optimizer, load_plan

        optimizer = kept_optimizer(load_plan(network.model or ""), config.learning_rate)
    else:
        schedule = keras.optimizers.schedules.InverseTimeDecay(
            initial_learning_rate=config.learning_rate,
            decay_steps=1,
            decay_rate=network.lr_decay,
        )
        optimizer = keras.optimizers.SGD(
            learning_rate=schedule, momentum=network.sgd_momentum, nesterov=True
        )
    if n_classes == 1:
        model.compile(optimizer=optimizer, loss="mean_squared_error", metrics=["mae"])
        return
    loss = "binary_crossentropy" if n_classes == 2 else "categorical_crossentropy"
    model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"])
