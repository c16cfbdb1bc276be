"""A network as text: a summary (``python -m bnsearch model``) and the layers of each
placement (``model --full``, and ``model.txt`` on a ``--model`` study's parent run)."""

from __future__ import annotations

import textwrap
from collections import Counter
from collections.abc import Sequence
from typing import Any

from bnsearch.errors import name_list
from bnsearch.networks._builder import NetworkSettings, build_model
from bnsearch.networks._graph import layers_without_form
from bnsearch.networks._rewrite import ModelPlan, layer_text, load_plan
from bnsearch.trial import BNConfig


def _names(names: Sequence[str]) -> str:
    return name_list(list(names), 6)  # names shown before "and N more"


def _wrapped(text: str) -> list[str]:
    return textwrap.wrap(text, 100, subsequent_indent="    ", break_long_words=True)


def _bns(plan: ModelPlan) -> tuple[list[str], list[str]]:
    """A ``--model``'s BatchNormalization layers removed (placed per trial), and kept."""
    removed = [i for site in plan.sites.values() for i in site.removed_bns]
    removed += [plan.output_bn] if plan.output_bn is not None else []
    removed += plan.preacts.values()  # a pre-activation's BN
    kept = [n.name for n in plan.nodes if n.role == "kept_bn"]
    return [plan.nodes[i].name for i in removed], kept


def _model_lines(plan: ModelPlan, shape: tuple[int, ...]) -> list[str]:
    """A ``--model``'s sites, its BatchNormalization layers and the layers it keeps."""
    output = plan.nodes[plan.output]
    lines = _wrapped(f"--model {plan.spec}: {len(plan.nodes)} layer calls, input {shape}")
    lines.append(f"  output {output.name!r} ({plan.output_activation}), left as it is")
    removed, kept_bns = _bns(plan)
    lines += _wrapped(f"sites ({len(plan.sites)}): {_names(plan.site_names)}")
    lines += _wrapped(
        f"BatchNormalization in the file: {len(removed) + len(kept_bns)}; {len(removed)} at "
        f"sites (removed, placed per trial), {len(kept_bns)} elsewhere (kept, removed in none)"
        + (f": {_names(kept_bns)}" if kept_bns else "")
    )
    if plan.kept:
        lines += _wrapped(f"kept as they are ({len(plan.kept)}): {_names(list(plan.kept))}")
    if unformed := layers_without_form(plan):
        lines += _wrapped(f"no population-engine form ({len(unformed)}): {_names(unformed)}")
    return lines


def summarize_network(
    network: NetworkSettings,
    placements: Sequence[str],
    engine: str,
    engine_reason: str | None = None,
    input_shape: tuple[int, ...] | None = None,
    n_classes: int | None = None,
) -> str:
    """What a study will train, in a few lines of at most 100 characters, and the ``engine``
    (with ``engine_reason``, why not the population engine)."""
    plan, shape, outputs, models = _built(network, placements, input_shape, n_classes)
    if plan is not None:
        lines = _model_lines(plan, shape)
    else:
        lines = [f"{network.kind} network, input {shape}, {outputs} outputs"]
    counts = {p: Counter(type(layer).__name__ for layer in m.layers) for p, m in models.items()}
    first = counts[placements[0]]
    kinds = ", ".join(f"{kind} {n}" for kind, n in first.most_common())
    lines += _wrapped(f"layers by kind ({placements[0]}, {sum(first.values())}): {kinds}")
    per = ", ".join(f"{p} {counts[p]['BatchNormalization']}" for p in placements)
    lines += _wrapped(f"BatchNormalization layers per placement: {per}")
    trains = f"engine: {engine}"
    if engine == "keras" and engine_reason:
        trains += f" (the population engine has no form for {engine_reason})"
    lines += _wrapped(trains)
    lines.append("every layer of each placement: python -m bnsearch model ... --full")
    return "\n".join(lines)


def describe_network(
    network: NetworkSettings,
    placements: Sequence[str],
    input_shape: tuple[int, ...] | None = None,
    n_classes: int | None = None,
) -> str:
    """The layer list of ``network`` under each placement."""
    lines: list[str] = []
    plan, _, _, models = _built(network, placements, input_shape, n_classes)
    if plan is not None:
        output = plan.nodes[plan.output]
        removed, kept_bns = _bns(plan)
        lines.append(
            f"--model {plan.spec}: {len(plan.sites)} sites ({', '.join(plan.site_names)}); "
            f"output layer {output.name!r} ({plan.output_activation}), left as it is"
        )
        for head, names in (
            ("BatchNormalization removed and placed per trial", removed),
            ("BatchNormalization kept where it is (no site)", kept_bns),
            ("kept as they are (bnsearch does not reason about them)", plan.kept),
        ):
            if names:
                lines.append(f"{head}: {', '.join(names)}")
    lines.append(
        "(shown with use_bias false, so a layer that a BN follows directly shows 'no bias'; "
        "momentum, epsilon and the dropout rate are each trial's)"
    )
    for placement, model in models.items():
        lines.append(f"placement {placement}:")
        lines += [f"  {layer.name:<24} {layer_text(layer)}" for layer in model.layers]
    return "\n".join(lines)


def _built(
    network: NetworkSettings,
    placements: Sequence[str],
    input_shape: tuple[int, ...] | None,
    n_classes: int | None,
) -> tuple[ModelPlan | None, tuple[int, ...], int, dict[str, Any]]:
    """A ``--model``'s plan (else None), the rows' shape and outputs (by default the
    ``--model``'s own or the thread's), and the model of each placement."""
    plan = load_plan(network.model or "") if network.kind == "model" else None
    if plan is None:
        shape, outputs = tuple(input_shape or (14,)), n_classes or 2
    else:
        shape = tuple(input_shape or (int(n or 1) for n in plan.input_shape))
        outputs = n_classes or plan.output_width
    models = {
        p: build_model(BNConfig(p, use_bias=False), shape, outputs, network, compile=False)
        for p in placements
    }
    return plan, shape, outputs, models
