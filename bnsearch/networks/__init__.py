"""The networks trials train: the builder of the built-in families and the public blocks."""

from __future__ import annotations

from bnsearch.networks._builder import (
    ACTIVATIONS,
    FAMILIES,
    INITIALIZERS,
    NetworkSettings,
    build_model,
    check_image_rows,
    compile_model,
    dense_uses_bias,
    hidden_layer_order,
    initializer,
    layer_plan,
)

__all__ = [
    "check_image_rows",
    "ACTIVATIONS",
    "FAMILIES",
    "INITIALIZERS",
    "NetworkSettings",
    "build_model",
    "compile_model",
    "dense_uses_bias",
    "hidden_layer_order",
    "initializer",
    "layer_plan",
]
