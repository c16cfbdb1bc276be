"""Engines decide *how* a batch of trials is trained."""

from bnsearch.engines._base import Engine, EpochCallback
from bnsearch.engines._keras import KerasEngine

__all__ = ["ENGINES", "Engine", "EpochCallback", "KerasEngine", "make_engine"]

ENGINES = ("keras",)


def make_engine(name: str) -> Engine:
    from bnsearch.errors import ConfigError

    if name == "keras":
        return KerasEngine()
    raise ConfigError(f"unknown engine {name!r}; choose one of {', '.join(ENGINES)}.")
