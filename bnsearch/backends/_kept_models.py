"""The confirmation round's trained models, logged to their MLflow runs with ``--keep-models``
(search trials keep none: hundreds would fill the store for nothing)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from bnsearch.config import StudyConfig
from bnsearch.data import Dataset
from bnsearch.trial import Phase, TrialSpec

if TYPE_CHECKING:
    from bnsearch.tracking import MlflowTracker


def keeps_models(config: StudyConfig, specs: Sequence[TrialSpec]) -> bool:
    """Whether this batch's models are kept: a confirmation round of a study that asks."""
    return config.keep_models and bool(specs) and all(s.phase == Phase.CONFIRM for s in specs)


def log_kept_models(
    tracker: MlflowTracker, models: Sequence[Any], run_ids: Sequence[str | None], dataset: Dataset
) -> None:
    """Log each kept model to its trial's run (a failed trial has no model)."""
    for model, run_id in zip(models, run_ids, strict=True):
        if model is not None and run_id is not None:
            tracker.log_keras_model(run_id, model, dataset.x)
