"""The networks trials train: built-in families, your own model rewritten, public blocks.

``--model`` networks are rewritten by one rule (:mod:`._rewrite`), by which every network
the population engine trains is read into one layer graph (:mod:`._graph`).
"""

from __future__ import annotations

from bnsearch.networks._builder import (
    ACTIVATIONS,
    FAMILIES,
    INITIALIZERS,
    NetworkSettings,
    build_model,
    compile_model,
)
from bnsearch.networks._builder_rule import builder_differs, probe_configs
from bnsearch.networks._describe import describe_network, summarize_network
from bnsearch.networks._graph import GraphOp, LayerGraph, network_graph, seeded_initializer
from bnsearch.networks._rewrite import (
    ModelPlan,
    check_model_fits,
    load_plan,
    plan_of_model,
    rewrite_model,
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
    "seeded_initializer",
    "FAMILIES",
    "INITIALIZERS",
    "NetworkSettings",
    "build_model",
    "compile_model",
]
