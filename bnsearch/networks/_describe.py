"""A network as text: the layers of each placement, as ``python -m bnsearch model`` prints
them and a study logs them (``model.txt`` on the parent run, for a ``--model`` network)."""

from __future__ import annotations

from collections.abc import Sequence

from bnsearch.networks._builder import NetworkSettings, build_model
from bnsearch.networks._rewrite import layer_text, load_plan
from bnsearch.trial import BNConfig

__all__ = ["describe_network"]


def describe_network(
    network: NetworkSettings,
    placements: Sequence[str],
    input_shape: tuple[int, ...] | None = None,
    n_classes: int | None = None,
) -> str:
    """The layer list of ``network`` under each placement, for rows of ``input_shape`` and
    ``n_classes`` outputs (1: regression); a ``--model`` network's own shapes by default."""
    lines: list[str] = []
    if network.kind == "model":
        plan = load_plan(network.model or "")
        input_shape = input_shape or tuple(int(n or 1) for n in plan.input_shape)
        n_classes = n_classes or plan.output_width
        output = plan.nodes[plan.output]
        removed = [plan.nodes[i].name for site in plan.sites.values() for i in site.removed_bns]
        if plan.output_bn is not None:
            removed.append(plan.nodes[plan.output_bn].name)
        lines.append(
            f"--model {plan.spec}: {len(plan.sites)} sites ({', '.join(plan.site_names)}); "
            f"output layer {output.name!r} ({plan.output_activation}), left as it is"
        )
        if removed:
            lines.append(f"BatchNormalization removed and placed per trial: {', '.join(removed)}")
        kept_bns = [n.name for n in plan.nodes if n.role == "kept_bn"]
        if kept_bns:
            lines.append(f"BatchNormalization kept where it is (no site): {', '.join(kept_bns)}")
        if plan.kept:
            kept = ", ".join(plan.kept)
            lines.append(f"kept as they are (bnsearch does not reason about them): {kept}")
    shape = tuple(input_shape or (14,))
    outputs = n_classes or 2
    lines.append(
        "(shown with use_bias false, so a layer that a BN follows directly shows 'no bias'; "
        "momentum, epsilon and the dropout rate are each trial's)"
    )
    for placement in placements:
        config = BNConfig(placement=placement, use_bias=False)
        model = build_model(config, shape, outputs, network, seed=0, compile=False)
        lines.append(f"placement {placement}:")
        for layer in model.layers:
            lines.append(f"  {layer.name:<24} {layer_text(layer)}")
    return "\n".join(lines)
