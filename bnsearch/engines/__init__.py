"""Engines decide *how* a batch of trials is trained; backends decide what to train."""

from __future__ import annotations

from bnsearch.config import ENGINES, StudyConfig
from bnsearch.engines._base import Engine, EpochCallback, TrainOutput
from bnsearch.engines._keras import KerasEngine, fit_arguments, recording_callback
from bnsearch.engines._population import Population, PopulationEngine, SlotUse
from bnsearch.errors import ConfigError
from bnsearch.networks import NetworkSettings

__all__ = [
    "ENGINES",
    "Engine",
    "EpochCallback",
    "KerasEngine",
    "Population",
    "PopulationEngine",
    "SlotUse",
    "TrainOutput",
    "engine_for",
    "engine_notice",
    "fit_arguments",
    "make_engine",
    "recording_callback",
    "resolve",
]

_ENGINE_CLASSES: dict[str, type] = {"population": PopulationEngine, "keras": KerasEngine}
assert tuple(_ENGINE_CLASSES) == ENGINES, "config.ENGINES names the engines defined here"


def engine_for(requested: str, network: NetworkSettings, model_fit_only: bool = False) -> str:
    """The engine that will train ``network``: the one asked for if it can, else the Keras
    engine (the reference, which trains every network). ``model_fit_only``: the backend
    trains through ``model.fit`` itself (Keras Tuner)."""
    engine = _ENGINE_CLASSES.get(requested)
    if engine is None or model_fit_only or not engine.trains(network):
        return "keras" if engine is not None else requested
    return requested


def engine_notice(network: NetworkSettings) -> str | None:
    """What a study says when its network is one the population engine does not train."""
    if PopulationEngine.trains(network):
        return None
    return (
        "bnsearch: notice: the population engine trains bnsearch's mlp and cnn families; "
        "this network from `builder` trains on the Keras engine (one model.fit per trial)."
    )


def resolve(config: StudyConfig) -> StudyConfig:
    """``config`` with the engine that will train it (see :func:`engine_for`); every verb
    that trains resolves its config once, at its start."""
    return config.with_changes(engine=engine_for(config.engine, config.network, config.fit_only))


def make_engine(name: str, max_population: int = 64) -> Engine:
    if name == "keras":
        return KerasEngine()
    if name == "population":
        return PopulationEngine(max_population=max_population)
    raise ConfigError(f"unknown engine {name!r}; choose one of {', '.join(ENGINES)}.")
