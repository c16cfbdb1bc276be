"""A population member as the Keras model of its trial, holding the member's weights."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bnsearch.data import Dataset
from bnsearch.networks import GraphOp, ModelPlan, NetworkSettings, build_model, plan_of_model
from bnsearch.trial import TrialSpec

if TYPE_CHECKING:
    from bnsearch.engines._population._population import Population


def member_model(
    population: Population, p: int, spec: TrialSpec, dataset: Dataset, network: NetworkSettings
) -> Any:
    """Member ``p`` as the Keras model ``build_model`` builds for ``spec``, holding its
    trained weights; not compiled, so a saved model carries no half-built optimizer."""
    model = build_model(
        spec.config, dataset.x.shape[1:], dataset.n_classes, network, spec.seed, False
    )
    weights = population.member_weights(p)
    graph_cores = {op.seed_key: op for op in population.graph.ops if op.kind == "core"}
    plan = plan_of_model("a member's model", model, need_site=False)
    cores: dict[int, GraphOp] = {}
    for index, key in plan.seeds.items():
        if key[0] == "dropout":
            continue
        layer, op = plan.nodes[index].layer, graph_cores[key]
        cores[index] = op
        if op.pointwise_shape:  # a SeparableConv2D
            layer.depthwise_kernel.assign(weights[f"kernel_{op.name}"])
            layer.pointwise_kernel.assign(weights[f"pointwise_{op.name}"])
        else:
            layer.kernel.assign(weights[f"kernel_{op.name}"])
        if layer.use_bias:
            layer.bias.assign(weights[f"bias_{op.name}"])
    kept = [op.name for op in population.graph.ops if op.kind == "bn"]
    preacts = {op.name for op in population.graph.ops if op.kind == "preact"}
    for index, slot in _bn_slots(plan, cores, kept, preacts, spec.config.placement).items():
        layer = plan.nodes[index].layer
        layer.gamma.assign(weights[f"gamma_{slot}"])
        layer.beta.assign(weights[f"beta_{slot}"])
        layer.moving_mean.assign(weights[f"moving_mean_{slot}"])
        layer.moving_variance.assign(weights[f"moving_var_{slot}"])
    return model


def _bn_slots(
    plan: ModelPlan, cores: dict[int, GraphOp], kept: list[str], preacts: set[str], placement: str
) -> dict[int, str]:
    """Each BN call of a trial's model and its population slot, by what feeds it; any
    other BN is one the model keeps, in order."""
    nodes = plan.nodes
    kept_bns = iter(kept)
    slots: dict[int, str] = {}
    for node in nodes:
        if node.cls != "BatchNormalization":
            continue
        if node.name in preacts:  # a pre-activation's BN keeps its name: its slot's
            slots[node.index] = node.name
            continue
        source = node.inputs[0] if node.inputs else -1
        core = cores.get(source)
        if source >= 0 and core is None and placement == "after" and nodes[source].inputs:
            core = cores.get(nodes[source].inputs[0])  # layer → activation → BN
        if (
            core is not None
            and core.role == "site"
            and placement in ("before", "after", "before_output")
        ):
            slots[node.index] = core.name
        elif core is not None and core.role == "output" and placement == "before_output":
            slots[node.index] = "output_bn"
        elif (
            placement == "input"
            and source in (-1, plan.flatten_first)
            and ("input_bn" not in slots.values())
        ):
            slots[node.index] = "input_bn"
        else:
            slots[node.index] = next(kept_bns)
    return slots
