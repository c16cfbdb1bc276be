"""What the built-in networks, the rewrite of your model and :mod:`bnsearch.networks.blocks`
share, below all three: the order of a hidden layer's parts, and the current folder made
importable for a builder's or a model's module."""

from __future__ import annotations

import sys

__all__ = ["cwd_importable", "hidden_layer_order"]


def hidden_layer_order(placement: str) -> tuple[str, ...]:
    """One hidden layer (Dense or Conv2D) under a placement: the order of ``layer``, ``bn``
    and ``activation``, which the built-in networks, :mod:`bnsearch.blocks` and the rewrite
    of your own model follow."""
    if placement in ("before", "before_output"):
        return ("layer", "bn", "activation")
    if placement == "after":
        return ("layer", "activation", "bn")
    return ("layer", "activation")  # none; input puts its one BN on the inputs instead


def cwd_importable() -> None:
    """The folder bnsearch runs from made importable, for a builder's or a model's module."""
    if "" not in sys.path and "." not in sys.path:
        sys.path.insert(0, "")
