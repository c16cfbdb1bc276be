"""What every engine offers: train a batch of trial specs, report each epoch, return results."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from bnsearch.data import Dataset
from bnsearch.networks import NetworkSettings
from bnsearch.trial import SearchSpace, TrialResult, TrialSpec

EpochCallback = Callable[[int, int, dict[str, float]], bool]
"""``(index into specs, epoch starting at 0, that epoch's metrics) -> stop this trial?``

Returning True prunes the trial: it stops training and is reported as PRUNED.
"""


@dataclass(frozen=True)
class TrainOutput:
    """What one :meth:`Engine.train` call gives back."""

    results: list[TrialResult]
    """One result per spec, in the order of the specs."""
    models: list[Any] = field(default_factory=list)
    """With ``keep_models``: one trained Keras model per spec (None for a trial without
    one); else empty."""


class Engine(Protocol):
    """How to train a batch of trials. The backend decides *what* to train."""

    name: str

    @property
    def trials_at_once(self) -> int:
        """How many trials one call of :meth:`train` trains together (a backend's batch)."""
        ...

    @staticmethod
    def trains(
        network: NetworkSettings, dataset: Dataset | None = None, space: SearchSpace | None = None
    ) -> bool:
        """Whether this engine can train ``network`` (on ``dataset``, for ``space``: a
        builder's network is judged there)."""
        ...

    def check_fits(self, dataset: Dataset, network: NetworkSettings) -> str | None:
        """Raise a ConfigError, before anything runs, if the work cannot fit (memory); a
        line to say when the engine adapted to fit (a smaller population), else None."""
        ...

    def train(
        self,
        specs: Sequence[TrialSpec],
        dataset: Dataset,
        network: NetworkSettings,
        on_epoch: EpochCallback | None = None,
        keep_models: bool = False,
    ) -> TrainOutput:
        """Train ``specs`` together; ``keep_models`` also hands back each trained model."""
        ...
