"""Asking Optuna's pruner about a whole population's epoch without a storage read per member."""

from __future__ import annotations

import copy
from collections.abc import Container
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial


class EpochSnapshot:
    """A study stand-in for pruners that answers ``get_trials`` from one snapshot per epoch
    round (pruners compare with *finished* trials, which cannot change during one round)."""

    def __init__(self, study: optuna.Study) -> None:
        self._study = study
        self._epoch: int | None = None
        self._trials: list[FrozenTrial] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)

    def refresh(self, epoch: int) -> None:
        if epoch != self._epoch:
            self._epoch = epoch
            self._trials = self._study.get_trials(deepcopy=False)

    def get_trials(
        self, deepcopy: bool = True, states: Container[optuna.trial.TrialState] | None = None
    ) -> list[FrozenTrial]:
        trials = self._trials if states is None else [t for t in self._trials if t.state in states]
        return copy.deepcopy(trials) if deepcopy else list(trials)

    def should_prune(self, trial: optuna.Trial, epoch: int, value: float) -> bool:
        """Report ``value`` for ``epoch`` and ask the study's pruner about ``trial``."""
        trial.report(value, epoch)
        self.refresh(epoch)
        current = next((t for t in self._trials if t.number == trial.number), None)
        if current is None:
            return trial.should_prune()
        current = copy.copy(current)
        current.intermediate_values = {**current.intermediate_values, epoch: value}
        # The pruner reads the study through get_trials, which this stand-in answers.
        return bool(self._study.pruner.prune(cast("optuna.Study", self), current))
