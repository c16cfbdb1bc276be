"""The order of one hidden layer's parts under a placement, shared by the built-in networks,
:mod:`bnsearch.networks.blocks` and the rewrite of your own model."""

from __future__ import annotations

__all__ = ["hidden_layer_order"]


def hidden_layer_order(placement: str) -> tuple[str, ...]:
    """One hidden layer (Dense or Conv2D) under a placement: the order of ``layer``, ``bn``
    and ``activation``. The network plan and :mod:`bnsearch.blocks` both follow it."""
    if placement in ("before", "before_output"):
        return ("layer", "bn", "activation")
    if placement == "after":
        return ("layer", "activation", "bn")
    return ("layer", "activation")  # none; input puts its one BN on the inputs instead
