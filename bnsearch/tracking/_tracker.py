"""MLflow tracking: one experiment per study, a parent run per invocation, a child run per trial.

:class:`MlflowTracker` knows TrialSpecs and TrialResults, nothing of Optuna or Keras Tuner.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from bnsearch.tracking._connection import Connection
from bnsearch.tracking._models import Models
from bnsearch.tracking._parent_runs import ParentRuns
from bnsearch.tracking._sync import Sync
from bnsearch.tracking._trial_runs import TrialRuns


class MlflowTracker(ParentRuns, TrialRuns, Sync, Models):
    """Writes a study's runs to one MLflow experiment named after the study."""

    def __init__(
        self,
        tracking_uri: str,
        experiment_name: str,
        artifact_root: Path | None = None,
    ) -> None:
        self.connection = Connection(tracking_uri, experiment_name, artifact_root)
        #: The study's parent run while one is open (set by :meth:`start_study_run`, or by a
        #: worker process writing trial runs under its parent's run).
        self.parent_run_id: str | None = None
        self._parent_run_name = ""
        self.pending = 0  # trial runs not (fully) written, for sync to back-fill
        self._without_params: set[str] = set()

    @property
    def experiment_name(self) -> str:
        return self.connection.experiment_name

    @property
    def experiment_id(self) -> str | None:
        """The study's experiment, once :meth:`connect` has opened it."""
        return self.connection.experiment_id

    @property
    def client(self) -> Any:
        """The ``MlflowClient``, connecting first if need be."""
        return self.connection.client

    @property
    def notify(self) -> Callable[[str], None]:
        """Where the tracker says that MLflow went away or came back (stderr by default)."""
        return self.connection.notify

    @notify.setter
    def notify(self, notify: Callable[[str], None]) -> None:
        self.connection.notify = notify

    def connect(self) -> None:
        """Open the store and create the study's experiment if needed."""
        self.connection.connect()
