"""Whether a ``--builder`` network places BN by the ``--model`` rule, so that the population
engine may train it: the builder's model for each probe is compared, layer call by layer
call, with the rule's rewrite of its ``none`` model (the docs, *Your model*, "Which engine
trains a builder's network").
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from bnsearch.networks._builder import NetworkSettings, build_model
from bnsearch.networks._rewrite import fused_activation, plan_of_model, rewrite_model
from bnsearch.trial import BNConfig

#: The second probe's settings, each unlike BNConfig's default (the first probe's).
_OTHER_SETTINGS: dict[str, Any] = {
    "momentum": 0.9,
    "epsilon": 1e-5,
    "use_bias": False,
    "dropout": 0.25,
}


def probe_configs(
    placements: Iterable[str], activations: Iterable[str | None] = ()
) -> tuple[BNConfig, ...]:
    """The configurations a builder is checked under: each placement (and each searched
    activation, or the builder's own), with the defaults and with :data:`_OTHER_SETTINGS`."""
    searched = tuple(dict.fromkeys(activations)) or (None,)
    return tuple(
        BNConfig(placement=placement, activation=activation, **settings)
        for placement in dict.fromkeys(placements)
        for activation in searched
        for settings in ({}, _OTHER_SETTINGS)
    )


@lru_cache(maxsize=32)
def builder_differs(
    network: NetworkSettings, shape: tuple[int, ...], n_classes: int, probes: tuple[BNConfig, ...]
) -> str | None:
    """How ``network``'s builder departs from the rule under ``probes`` (one phrase naming
    the probe and the first differing layer call), or None if it follows it."""

    def built(config: BNConfig) -> Any:
        return build_model(config, shape, n_classes, network, seed=0, compile=False)

    plan = plan_of_model(f"(the builder {network.builder}'s model)", built(BNConfig("none")))
    for probe in probes:
        theirs = _calls(built(probe))  # built first: Keras names unnamed layers in order
        difference = _first_difference(theirs, _calls(rewrite_model(plan, probe, seed=0)))
        if difference is not None:
            activation = f", activation {probe.activation}" if probe.activation else ""
            return (
                f"a network from `builder` that does not place BN by the --model rule "
                f"(placement {probe.placement!r}, momentum {probe.momentum:g}, epsilon "
                f"{probe.epsilon:g}, use_bias {str(probe.use_bias).lower()}, dropout "
                f"{probe.dropout:g}{activation}: {difference})"
            )
    return None


Call = tuple[str, tuple[int, ...], Any, str]  # class, calls feeding it (-1: input), config, name


def _calls(model: Any) -> list[Call]:
    """``model``'s layer calls as comparable values; a fused activation becomes the layer
    (linear) and an ``Activation`` call after it."""
    calls: list[Call] = []
    output_of: dict[int, int] = {-1: -1}
    for node in plan_of_model("a trial's model", model, need_site=False).nodes:
        if node.cls == "InputLayer":
            output_of[node.index] = -1
            continue
        config = _comparable(node.config)
        activation = fused_activation(config) if node.cls in ("Dense", "Conv2D") else "linear"
        if activation != "linear":
            config = {**config, "activation": "linear"}
        calls.append((node.cls, tuple(output_of[i] for i in node.inputs), config, node.name))
        if activation != "linear":
            name = f"{node.name} activation"
            calls.append(("Activation", (len(calls) - 1,), {"activation": activation}, name))
        output_of[node.index] = len(calls) - 1
    return calls


def _comparable(value: Any) -> Any:
    """A layer config without what may differ between equal layers: names, seeds, dtypes."""
    if isinstance(value, dict):
        drop = ("name", "seed", "dtype", "dtype_policy", "trainable")
        return {k: _comparable(v) for k, v in value.items() if k not in drop}
    if isinstance(value, list | tuple):
        return [_comparable(v) for v in value]
    return value


def _first_difference(theirs: list[Call], rule: list[Call]) -> str | None:
    for k, (mine, expected) in enumerate(zip(theirs, rule, strict=False)):
        where = f"layer call {k + 1}, {mine[3]!r}"
        if mine[:2] != expected[:2]:
            return f"{where}: the builder has {mine[0]}, the rule {expected[0]}"
        ours, its = mine[2], expected[2]
        if ours != its:
            keys = sorted(key for key in {**ours, **its} if ours.get(key) != its.get(key))
            return f"{where}: the builder's {mine[0]} differs in {', '.join(keys)}"
    if len(theirs) != len(rule):
        return f"{len(theirs)} layer calls where the rule has {len(rule)}"
    return None
