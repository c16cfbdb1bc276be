"""The one network builder: the thread's MLP with BatchNormalization placed by a BNConfig.

Every engine and backend builds its networks here, and the population engine is checked
against the models built here. For ``hidden_units=(64, 64)`` and ``activation="tanh"`` (the
defaults) the layers are, per placement::

    none:           Dense → tanh → Dropout → Dense → tanh → Dropout → Dense → softmax
    before:         Dense → BN → tanh → Dropout → ... → Dense → softmax
    after:          Dense → tanh → BN → Dropout → ... → Dense → softmax
    before_output:  as ``before``, plus Dense → BN → softmax at the output
    input:          BN → Dense → tanh → Dropout → ... (no other BN)

A ``BatchNormalization(momentum=m, epsilon=e)`` layer computes, in training mode,
``gamma * (x - mean_B) / sqrt(var_B + e) + beta`` with the biased variance of the batch and
updates ``moving = m * moving + (1 - m) * stat_B``; in inference mode it uses the moving
statistics. ``use_bias`` applies to each Dense layer whose output feeds a BN directly, where
the bias is redundant with BN's ``beta`` (the thread's ``Dense(64, use_bias=False)``); every
other Dense keeps its bias.

Optimiser: ``SGD(momentum=0.9, nesterov=True)`` with the thread's ``decay=1e-6`` written as
Keras 3's ``InverseTimeDecay(lr, decay_steps=1, decay_rate=1e-6)``, i.e.
``lr_t = lr / (1 + 1e-6 * t)``, exactly the old Keras ``decay`` rule. Loss: binary
cross-entropy on one-hot labels for two classes (as in the thread), categorical otherwise.

Initialiser: ``glorot_uniform`` by default, Keras' default since Keras 1 and the scale-aware
choice; the thread's ``init='uniform'`` (uniform in ±0.05) is ``initializer="uniform"``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from bnsearch.errors import ConfigError
from bnsearch.space import BNConfig

__all__ = ["ACTIVATIONS", "INITIALIZERS", "NetworkSettings", "build_model", "layer_plan"]

ACTIVATIONS = ("tanh", "relu", "elu", "sigmoid", "linear", "selu", "gelu")
INITIALIZERS = ("glorot_uniform", "uniform", "he_uniform")


@dataclass(frozen=True)
class NetworkSettings:
    """Everything about the network and its training that is not searched over."""

    hidden_units: tuple[int, ...] = (64, 64)
    activation: str = "tanh"
    initializer: str = "glorot_uniform"
    batch_size: int = 16
    epochs: int = 20
    validation_split: float = 0.2
    sgd_momentum: float = 0.9
    lr_decay: float = 1e-6

    def __post_init__(self) -> None:
        units = tuple(int(u) for u in self.hidden_units)
        object.__setattr__(self, "hidden_units", units)
        if not units or any(u < 1 for u in units):
            raise ConfigError(f"`hidden_units` must be positive widths, but got {list(units)}.")
        if self.activation not in ACTIVATIONS:
            raise ConfigError(
                f"unknown activation {self.activation!r}; choose one of {', '.join(ACTIVATIONS)}."
            )
        if self.initializer not in INITIALIZERS:
            raise ConfigError(
                f"unknown initializer {self.initializer!r}; choose one of "
                f"{', '.join(INITIALIZERS)}."
            )
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ConfigError(f"`batch_size` must be a positive integer, got {self.batch_size!r}.")
        if not isinstance(self.epochs, int) or self.epochs < 1:
            raise ConfigError(f"`epochs` must be a positive integer, but got {self.epochs!r}.")
        if not 0 < self.validation_split < 1:
            raise ConfigError(
                f"`validation_split` must satisfy 0 < value < 1, got {self.validation_split!r}."
            )

    def as_params(self) -> dict[str, Any]:
        params = asdict(self)
        params["hidden_units"] = ",".join(map(str, self.hidden_units))
        return params


def layer_plan(config: BNConfig, network: NetworkSettings) -> list[tuple[str, str]]:
    """The network as ``(kind, name)`` pairs in order; kinds are ``dense``, ``bn``,
    ``activation``, ``dropout`` and ``softmax``. The builder and the population engine both
    follow this plan, so they cannot disagree on layer order."""
    plan: list[tuple[str, str]] = []
    if config.placement == "input":
        plan.append(("bn", "input_bn"))
    bn_before = config.placement in ("before", "before_output")
    for i in range(1, len(network.hidden_units) + 1):
        plan.append(("dense", f"dense_{i}"))
        if bn_before:
            plan.append(("bn", f"bn_{i}"))
        plan.append(("activation", f"{network.activation}_{i}"))
        if config.placement == "after":
            plan.append(("bn", f"bn_{i}"))
        plan.append(("dropout", f"dropout_{i}"))
    plan.append(("dense", "output_dense"))
    if config.placement == "before_output":
        plan.append(("bn", "output_bn"))
    plan.append(("softmax", "softmax"))
    return plan


def dense_uses_bias(config: BNConfig, plan: list[tuple[str, str]], index: int) -> bool:
    """Whether the Dense at ``plan[index]`` has a bias: only those feeding a BN may drop it."""
    feeds_bn = index + 1 < len(plan) and plan[index + 1][0] == "bn"
    return config.use_bias or not feeds_bn


def _initializer(name: str, seed: int) -> Any:
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
    """
    import keras

    network = network or NetworkSettings()
    shape = (input_shape,) if isinstance(input_shape, int) else tuple(input_shape)
    plan = layer_plan(config, network)
    layers: list[Any] = [keras.Input(shape=shape, name="features")]
    if len(shape) > 1:
        layers.append(keras.layers.Flatten(name="flatten"))
    widths = [*network.hidden_units, n_classes]
    dense_seen = 0
    for index, (kind, name) in enumerate(plan):
        if kind == "dense":
            layers.append(
                keras.layers.Dense(
                    widths[dense_seen],
                    use_bias=dense_uses_bias(config, plan, index),
                    kernel_initializer=_initializer(network.initializer, seed * 1000 + dense_seen),
                    name=name,
                )
            )
            dense_seen += 1
        elif kind == "bn":
            layers.append(
                keras.layers.BatchNormalization(
                    momentum=config.momentum, epsilon=config.epsilon, name=name
                )
            )
        elif kind == "activation":
            layers.append(keras.layers.Activation(network.activation, name=name))
        elif kind == "dropout":
            layers.append(
                keras.layers.Dropout(config.dropout, seed=seed * 1000 + 500 + dense_seen, name=name)
            )
        else:
            layers.append(keras.layers.Activation("softmax", name=name))
    model = keras.Sequential(layers, name=f"thread_mlp_{config.placement}")
    if compile:
        compile_model(model, config, n_classes, network)
    return model


def compile_model(model: Any, config: BNConfig, n_classes: int, network: NetworkSettings) -> None:
    import keras

    schedule = keras.optimizers.schedules.InverseTimeDecay(
        initial_learning_rate=config.learning_rate, decay_steps=1, decay_rate=network.lr_decay
    )
    optimizer = keras.optimizers.SGD(
        learning_rate=schedule, momentum=network.sgd_momentum, nesterov=True
    )
    loss = "binary_crossentropy" if n_classes == 2 else "categorical_crossentropy"
    model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"])
