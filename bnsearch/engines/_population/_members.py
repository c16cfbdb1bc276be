"""A population member as the Keras model of its trial, holding the member's weights."""

from __future__ import annotations

from typing import Any

from bnsearch.data import Dataset
from bnsearch.engines._population._population import Population
from bnsearch.networks import NetworkSettings, build_model, plan_of_model
from bnsearch.trial import TrialSpec

__all__ = ["member_model"]


def member_model(
    population: Population, p: int, spec: TrialSpec, dataset: Dataset, network: NetworkSettings
) -> Any:
    """Member ``p`` as the Keras model :func:`bnsearch.networks.build_model` builds for
    ``spec`` (the built-in network, or a ``--model``'s rewrite), holding the member's
    trained weights and moving statistics. It is not compiled: the population's optimizer
    state (velocities) stays behind, so a saved model carries no half-built optimizer.

    The model is read by the same rule as the population's graph, so its k-th Dense (or
    Conv2D) is the graph's, a BN at a site is that site's slot, a BN on the input or the
    output is ``input_bn`` / ``output_bn``, and a kept BN is its own slot."""
    model = build_model(
        spec.config, dataset.x.shape[1:], dataset.n_classes, network, spec.seed, False
    )
    weights = population.member_weights(p)
    graph = population.graph
    cores = {op.seed_key: op.name for op in graph.ops if op.kind == "core"}
    kept = [op.name for op in graph.ops if op.kind == "bn"]
    plan = plan_of_model("a member's model", model)
    slots: dict[int, str] = {}
    site_names: dict[int, str] = {}
    counts = {"Dense": 0, "Conv2D": 0}
    for node in plan.nodes:
        if node.cls in counts:
            key = ("dense" if node.cls == "Dense" else "conv", counts[node.cls])
            counts[node.cls] += 1
            site_names[node.index] = cores[key]
            node.layer.kernel.assign(weights[f"kernel_{cores[key]}"])
            if node.layer.use_bias:
                node.layer.bias.assign(weights[f"bias_{cores[key]}"])
    for index, site in plan.sites.items():
        slots.update({bn: site_names[index] for bn in site.removed_bns})
    if plan.output_bn is not None:
        slots[plan.output_bn] = "output_bn"
    kept_bns = iter(kept)
    for node in plan.nodes:
        if node.cls != "BatchNormalization" or node.index in slots:
            continue
        on_input = node.inputs in ((-1,), (plan.flatten_first,))
        if on_input and spec.config.placement == "input" and "input_bn" not in slots.values():
            slots[node.index] = "input_bn"
        else:
            slots[node.index] = next(kept_bns)
    for index, slot in slots.items():
        layer = plan.nodes[index].layer
        layer.gamma.assign(weights[f"gamma_{slot}"])
        layer.beta.assign(weights[f"beta_{slot}"])
        layer.moving_mean.assign(weights[f"moving_mean_{slot}"])
        layer.moving_variance.assign(weights[f"moving_var_{slot}"])
    return model
