"""Building blocks for your own network (``--builder``): a Dense or Conv2D layer with its
BatchNormalization placed by the trial's :class:`~bnsearch.trial.BNConfig`, then the
activation; ``from bnsearch.blocks import conv_block, dense_block``.

How to write a builder, what a block is per placement and when its network trains on the
population engine: the docs, *Your model*.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from bnsearch.networks._common import bn_layer, hidden_layer_order
from bnsearch.trial import BNConfig

__all__ = ["conv_block", "dense_block"]


def _placed(x: Any, make_layer: Any, config: BNConfig, activation: str, name: str | None) -> Any:
    import keras

    def named(suffix: str) -> str | None:
        return f"{name}_{suffix}" if name else None

    order = hidden_layer_order(config.placement)
    for step in order:
        if step == "layer":  # a bias only where no BN follows directly
            x = make_layer(use_bias=config.use_bias or order[1] != "bn", name=name)(x)
        elif step == "bn":
            x = bn_layer(config, named("bn"))(x)
        else:
            x = keras.layers.Activation(config.activation or activation, name=named("act"))(x)
    return x


def dense_block(
    x: Any, units: int, config: BNConfig, activation: str = "relu", name: str | None = None
) -> Any:
    """``Dense(units)`` with BN placed by ``config``, then ``activation``."""
    import keras

    return _placed(x, partial(keras.layers.Dense, units), config, activation, name)


def conv_block(
    x: Any,
    filters: int,
    kernel_size: int | tuple[int, int],
    config: BNConfig,
    activation: str = "relu",
    name: str | None = None,
) -> Any:
    """``Conv2D(filters, kernel_size, padding='same')`` with BN placed by ``config``, then
    ``activation``; channels last."""
    import keras

    layer = partial(keras.layers.Conv2D, filters, kernel_size, padding="same")
    return _placed(x, layer, config, activation, name)
