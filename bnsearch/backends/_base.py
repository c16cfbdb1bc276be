"""What every backend offers: the study's store, what to train next, its results read back."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from bnsearch.config import StudyConfig
from bnsearch.data import Dataset
from bnsearch.engines import Engine
from bnsearch.stats import Verdict
from bnsearch.tracking import MlflowTracker
from bnsearch.trial import Phase, StoredTrials, TrialResult

ResultCallback = Callable[[TrialResult], None]
"""Hears each result as recorded; optional ``on_batch`` and ``on_epoch()`` attributes hear
of batches and epochs."""

BatchCallback = Callable[[Phase, int, int, int], None]
"""``on_batch(phase, look, n_trials, epochs)``: a batch starts (``look`` counts from 1)."""


@dataclass(frozen=True)
class StudyReader:
    """An existing study read back from its store without opening it for training."""

    tags: dict[str, str]  # naming the study in its store, for the MLflow runs made from it
    data_fingerprint: str  # of the data the study was run on ("unknown" if not recorded)
    unpaired_reason: str | None  # why its trials are not paired blocks (no paired verdict)
    no_ranking_reason: str | None  # why its validation rows cannot rank the placements
    stored_trials: Callable[[], StoredTrials]  # read afresh at each call
    importances: Callable[[], dict[str, float]]  # each hyperparameter's ({} if unknown)


class Backend(Protocol):
    """Decides *what* to train and keeps every result in its own store (MLflow is the
    view); only :meth:`open` touches the store."""

    def __init__(
        self, config: StudyConfig, dataset: Dataset, engine: Engine, tracker: MlflowTracker
    ) -> None: ...

    @property
    def name(self) -> str:
        """How the study's parent run and its summary line name the backend."""

    @property
    def unpaired_reason(self) -> str | None:
        """Why this backend's trials are not paired blocks (no paired verdict), or None."""

    @classmethod
    def probe(cls, config: StudyConfig) -> None:
        """A StoreError now if the store's server does not answer (asked before TensorFlow
        loads, so a study never waits for it to be refused)."""

    @classmethod
    def prepare(cls, config: StudyConfig, dataset: Dataset) -> str:
        """Create (or check) the study's store before workers start; where and how many."""

    @classmethod
    def read(cls, config: StudyConfig) -> StudyReader:
        """The existing study, for reading only; a ConfigError if there is none."""

    def open(self) -> list[str]:
        """Create or load the study (refusing a changed one); notices for the user."""

    def store_tags(self) -> dict[str, str]:
        """Tags that tell a person where the backend keeps the study (secrets redacted)."""

    def existing_trials(self) -> int:
        """Trials the study held when it was opened."""

    def up_to_date(self) -> str | None:
        """A message when the study already reached its target and nothing is to be run."""

    def budget(self) -> tuple[int, str]:
        """The trials this run plans to train (for progress) and how to say so."""

    def run(
        self, on_result: ResultCallback | None, log: Callable[[str], None]
    ) -> list[TrialResult]:
        """Train up to the budget (or ``timeout``); the new results, in the order trained."""

    def results(self) -> list[TrialResult]:
        """Every finished trial of the study, read back from the backend's store."""

    def stored_trials(self) -> StoredTrials:
        """What the store holds, read afresh at each call (for MLflow to catch up with)."""

    def importances(self) -> dict[str, float]:
        """Each hyperparameter's importance over the completed trials ({} if unknown)."""

    def record_verdict(self, verdict: Verdict) -> None:
        """Keep the verdict with the study where its store has a viewer of its own."""
