"""The networks trials train: built-in families, your own model rewritten, public blocks.

The builder makes the built-in families; ``--model`` networks are rewritten into each
placement by one rule (:mod:`._rewrite`); every network the population engine trains is
read by that rule into one layer graph (:mod:`._graph`); :mod:`.blocks` is the public face
for builders.
"""

from __future__ import annotations

from bnsearch.networks._builder import (
    ACTIVATIONS,
    FAMILIES,
    INITIALIZERS,
    NetworkSettings,
    build_model,
    compile_model,
    layer_plan,
)
from bnsearch.networks._builder_rule import builder_differs, probe_configs
from bnsearch.networks._describe import describe_network, summarize_network
from bnsearch.networks._graph import (
    GraphOp,
    LayerGraph,
    network_graph,
    seeded_initializer,
)
from bnsearch.networks._rewrite import (
    ModelPlan,
    check_model_fits,
    load_plan,
    plan_of_model,
    rewrite_model,
    seed_kind,
)

__all__ = [
    "ACTIVATIONS",
    "builder_differs",
    "probe_configs",
    "GraphOp",
    "LayerGraph",
    "ModelPlan",
    "check_model_fits",
    "describe_network",
    "summarize_network",
    "load_plan",
    "network_graph",
    "plan_of_model",
    "rewrite_model",
    "seed_kind",
    "seeded_initializer",
    "FAMILIES",
    "INITIALIZERS",
    "NetworkSettings",
    "build_model",
    "compile_model",
    "layer_plan",
]
