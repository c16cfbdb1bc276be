"""What every engine offers: train a batch of trial specs, report each epoch, return results."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from bnsearch.data import Dataset
from bnsearch.networks import NetworkSettings
from bnsearch.trial import TrialResult, TrialSpec

__all__ = ["Engine", "EpochCallback"]

EpochCallback = Callable[[int, int, dict[str, float]], bool]
"""``(index into specs, epoch starting at 0, that epoch's metrics) -> stop this trial?``

Returning True prunes the trial: it stops training and is reported as PRUNED.
"""


class Engine(Protocol):
    """How to train a batch of trials. The backend decides *what* to train."""

    name: str
    trials_at_once: int
    """How many trials one call of :meth:`train` trains together (a backend's batch)."""
    keep_models: bool
    """Whether :meth:`train` keeps each trial's trained Keras model in :attr:`models`."""
    models: list[Any]
    """With ``keep_models``: one Keras model per spec of the last :meth:`train` (None for a
    trial without one)."""

    @staticmethod
    def trains(network: NetworkSettings) -> bool:
        """Whether this engine can train ``network`` (its family, or a custom builder)."""
        ...

    def check_fits(self, dataset: Dataset, network: NetworkSettings) -> None:
        """Raise a ConfigError, before anything runs, if the work cannot fit (memory)."""
        ...

    def train(
        self,
        specs: Sequence[TrialSpec],
        dataset: Dataset,
        network: NetworkSettings,
        on_epoch: EpochCallback | None = None,
    ) -> list[TrialResult]: ...
