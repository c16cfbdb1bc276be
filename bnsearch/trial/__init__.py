"""The vocabulary every layer shares: the search space, trial records, the recorder, seeds."""

from __future__ import annotations

from bnsearch.trial._recorder import (
    TrialRecorder,
    failure_kind,
)
from bnsearch.trial._records import (
    METRICS,
    StoredTrials,
    TrialResult,
    TrialSpec,
    TrialState,
)
from bnsearch.trial._seeds import (
    confirmation_seed,
    trial_seed,
)
from bnsearch.trial._space import (
    ACTIVATIONS,
    DEFAULT_PLACEMENTS,
    PLACEMENTS,
    BNConfig,
    FloatRange,
    SearchSpace,
)

__all__ = [
    "ACTIVATIONS",
    "BNConfig",
    "DEFAULT_PLACEMENTS",
    "FloatRange",
    "METRICS",
    "PLACEMENTS",
    "SearchSpace",
    "StoredTrials",
    "TrialRecorder",
    "TrialResult",
    "TrialSpec",
    "TrialState",
    "confirmation_seed",
    "failure_kind",
    "trial_seed",
]
