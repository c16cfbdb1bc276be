"""The confirmation round's trained models, kept when the study asks (``keep_models``).

The confirmation round re-trains each placement's best configuration with fresh seeds; with
``--keep-models`` each of those trials' trained model is logged to its own MLflow run as a
Keras-flavored MLflow model (signature and input example included), so the models behind
the verdict's "mean ± sd" can be loaded without re-training. Search trials keep no models:
hundreds of them would fill the store for nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bnsearch.config import StudyConfig
from bnsearch.data import Dataset
from bnsearch.trial import Phase, TrialSpec

__all__ = ["keeps_models", "log_kept_models"]


def keeps_models(config: StudyConfig, specs: Sequence[TrialSpec]) -> bool:
    """Whether this batch's models are kept: a confirmation round of a study that asks."""
    return config.keep_models and bool(specs) and all(s.phase == Phase.CONFIRM for s in specs)


def log_kept_models(
    tracker: Any, models: Sequence[Any], run_ids: Sequence[str | None], dataset: Dataset
) -> None:
    """Log each kept model to its trial's run (a failed trial has no model)."""
    for model, run_id in zip(models, run_ids, strict=True):
        if model is not None and run_id is not None:
            tracker.log_keras_model(run_id, model, dataset.x)
