"""Engines decide *how* a batch of trials is trained; backends decide what to train."""

from bnsearch.engines._base import Engine, EpochCallback
from bnsearch.engines._keras import KerasEngine
from bnsearch.engines._population import PopulationEngine

__all__ = ["ENGINES", "Engine", "EpochCallback", "KerasEngine", "PopulationEngine", "make_engine"]

ENGINES = ("population", "keras")


def make_engine(name: str, max_population: int = 64) -> Engine:
    from bnsearch.errors import ConfigError

    if name == "keras":
        return KerasEngine()
    if name == "population":
        return PopulationEngine(max_population=max_population)
    raise ConfigError(f"unknown engine {name!r}; choose one of {', '.join(ENGINES)}.")
