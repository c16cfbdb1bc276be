"""The layer graph a population trains and the BN slots it builds (no TensorFlow here)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bnsearch.data import Dataset
from bnsearch.errors import ConfigError
from bnsearch.networks import (
    LayerGraph,
    NetworkSettings,
    builder_differs,
    network_graph,
    probe_configs,
)
from bnsearch.trial import BNConfig, TrialSpec

#: The order of a graph-mode population's members, by placement (``PopulationEngine`` sorts
#: its trials so): the members of each BN slot are then one run of members, and a BN
#: normalises that run's slice instead of every member with a select after.
MEMBER_ORDER: tuple[str, ...] = ("before", "before_output", "after", "input", "none")


def member_rank(spec: TrialSpec) -> int:
    """Where ``spec``'s placement comes in :data:`MEMBER_ORDER`."""
    return MEMBER_ORDER.index(spec.config.placement)


@dataclass(frozen=True)
class SlotUse:
    """Which BN slots a population's graph has: the input BN, the sites' BN (serving
    ``before`` and ``after``) and the output BN. Part of the compiled graph's key."""

    input_bn: bool = True
    hidden_bn: bool = True
    output_bn: bool = True

    @classmethod
    def of(cls, specs: Sequence[TrialSpec]) -> SlotUse:
        placements = {spec.config.placement for spec in specs}
        return cls(
            "input" in placements,
            bool(placements & {"before", "after", "before_output"}),
            "before_output" in placements,
        )


def graph_for(
    network: NetworkSettings, dataset: Dataset, configs: Sequence[BNConfig] = ()
) -> LayerGraph:
    """``network``'s layer graph on ``dataset``'s rows, or a one-line ConfigError."""
    graph = graph_or_reason(network, dataset, configs)
    if isinstance(graph, str):
        raise ConfigError(f"the population engine has no form for {graph}; use --engine keras.")
    return graph


def graph_or_reason(
    network: NetworkSettings, dataset: Dataset, configs: Sequence[BNConfig] = ()
) -> LayerGraph | str:
    """``network``'s layer graph on ``dataset``'s rows, or why the engine cannot train it;
    a ``builder`` network must also place BN by the ``--model`` rule under ``configs`` (the
    trials about to train, or probes of a study's space; none: its shape only)."""
    shape, n_classes = dataset.x.shape[1:], dataset.n_classes
    graph = network_graph(network, shape, n_classes)
    if isinstance(graph, str) or network.kind != "custom" or not configs:
        return graph
    placements = [config.placement for config in configs]
    probes = probe_configs(placements, [config.activation for config in configs])
    return builder_differs(network, shape, n_classes, probes) or graph
