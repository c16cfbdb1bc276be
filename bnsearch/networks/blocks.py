"""Building blocks for your own network: a Dense or Conv2D layer with its BatchNormalization
placed by the trial's :class:`~bnsearch.trial.BNConfig`, then the activation.

Write a builder ``build(config, input_shape, n_classes, seed) -> keras.Model`` (uncompiled,
ending in a softmax) with these blocks wherever a layer should follow the study's placement,
and point a study at it with ``builder = "mymodule:build"`` (study file ``[network]``) or
``--builder mymodule:build``::

    import keras
    from bnsearch.blocks import conv_block, dense_block

    def build(config, input_shape, n_classes, seed):
        inputs = keras.Input(shape=input_shape)
        x = conv_block(inputs, 32, 3, config, activation="relu")
        x = keras.layers.GlobalAveragePooling2D()(x)
        x = dense_block(x, 64, config, activation="relu")
        outputs = keras.layers.Dense(n_classes, activation="softmax")(x)
        return keras.Model(inputs, outputs)

Per placement a block is:

* ``none``: layer → activation.
* ``before`` (and ``before_output``): layer → BN → activation, ``g(BN(Wu))``; the layer has
  a bias only if ``config.use_bias`` (BN's ``beta`` makes it redundant).
* ``after``: layer → activation → BN; the layer keeps its bias (the activation sits
  between it and the BN), as in the built-in networks.
* ``input``: layer → activation (the input BN is the network's first layer, which your
  builder adds itself if it wants one: ``keras.layers.BatchNormalization()(inputs)`` when
  ``config.placement == "input"``).

The BN normalises over the last axis (channels last): per channel after a Conv2D, per unit
after a Dense, with ``config.momentum`` and ``config.epsilon``. ``config.activation``, when
the study searches it, replaces the ``activation`` argument.

A builder whose models are what the ``--model`` rule makes of its ``none`` model trains on
the population engine: blocks at the sites, ``Dropout(config.dropout)``, and for
``input`` / ``before_output`` (if the study uses them) an input BN and a BN between the
output layer and its softmax, with ``config.momentum`` and ``config.epsilon``
(:mod:`bnsearch.networks._builder_rule` checks it; any other builder trains on the Keras
engine, and the study names the first layer where it departs).
"""

from __future__ import annotations

from typing import Any

from bnsearch.networks._builder import hidden_layer_order
from bnsearch.trial import BNConfig

__all__ = ["conv_block", "dense_block"]


def _placed(x: Any, make_layer: Any, config: BNConfig, activation: str, name: str | None) -> Any:
    import keras

    def named(suffix: str) -> str | None:
        return f"{name}_{suffix}" if name else None

    order = hidden_layer_order(config.placement)
    for step in order:
        if step == "layer":  # a bias only where no BN follows directly
            x = make_layer(config.use_bias or order[1] != "bn", name)(x)
        elif step == "bn":
            x = keras.layers.BatchNormalization(
                axis=-1, momentum=config.momentum, epsilon=config.epsilon, name=named("bn")
            )(x)
        else:
            x = keras.layers.Activation(config.activation or activation, name=named("act"))(x)
    return x


def dense_block(
    x: Any, units: int, config: BNConfig, activation: str = "relu", name: str | None = None
) -> Any:
    """``Dense(units)`` with BN placed by ``config``, then ``activation``."""
    import keras

    def make(use_bias: bool, layer_name: str | None) -> Any:
        return keras.layers.Dense(units, use_bias=use_bias, name=layer_name)

    return _placed(x, make, config, activation, name)


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

    def make(use_bias: bool, layer_name: str | None) -> Any:
        return keras.layers.Conv2D(
            filters, kernel_size, padding="same", use_bias=use_bias, name=layer_name
        )

    return _placed(x, make, config, activation, name)
