"""What the built-in networks, the rewrite of your model and the blocks share, below all three."""

from __future__ import annotations

import importlib
import sys
from types import ModuleType
from typing import Any

from bnsearch.errors import ConfigError
from bnsearch.trial import BNConfig


def hidden_layer_order(placement: str) -> tuple[str, ...]:
    """The order of a hidden layer's ``layer``, ``bn`` and ``activation`` under a placement."""
    if placement in ("before", "before_output"):
        return ("layer", "bn", "activation")
    if placement == "after":
        return ("layer", "activation", "bn")
    return ("layer", "activation")  # none; input puts its one BN on the inputs instead


def bn_layer(config: BNConfig, name: str | None) -> Any:
    """A BatchNormalization over the last axis with the trial's momentum and epsilon."""
    import keras

    return keras.layers.BatchNormalization(
        axis=-1, momentum=config.momentum, epsilon=config.epsilon, name=name
    )


def cwd_importable() -> None:
    """The folder bnsearch runs from made importable, for a builder's or a model's module."""
    if "" not in sys.path and "." not in sys.path:
        sys.path.insert(0, "")


def import_or_refuse(module: str, what: str) -> ModuleType:
    """``module`` imported (from the folder bnsearch runs from too); a ConfigError about
    ``what`` if it cannot be."""
    cwd_importable()
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ConfigError(
            f"cannot import {what} ({error}); put {module}.py in the folder you run bnsearch "
            "from or on PYTHONPATH."
        ) from None
