"""What every engine offers: train a batch of trial specs, report each epoch, return results."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from bnsearch.data import Dataset
from bnsearch.model import NetworkSettings
from bnsearch.results import TrialResult, TrialSpec

__all__ = ["Engine", "EpochCallback"]

EpochCallback = Callable[[int, int, dict[str, float]], bool]
"""``(index into specs, epoch starting at 0, that epoch's metrics) -> stop this trial?``

Returning True prunes the trial: it stops training and is reported as PRUNED.
"""


class Engine(Protocol):
    """How to train a batch of trials. The backend decides *what* to train."""

    name: str

    def train(
        self,
        specs: Sequence[TrialSpec],
        dataset: Dataset,
        network: NetworkSettings,
        on_epoch: EpochCallback | None = None,
    ) -> list[TrialResult]: ...
