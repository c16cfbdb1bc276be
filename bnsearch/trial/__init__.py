"""The vocabulary every layer shares: the search space, trial records, the recorder, seeds."""

from __future__ import annotations

from bnsearch.trial._process import process_alive
from bnsearch.trial._recorder import (
    DIVERGED_LOSS,
    TrialRecorder,
    failure_epoch,
    failure_kind,
    is_divergence,
)
from bnsearch.trial._records import (
    METRICS,
    TASK_METRICS,
    VERDICT_METRICS,
    Phase,
    StoredTrials,
    TrialResult,
    TrialSpec,
    TrialState,
    lower_is_better,
)
from bnsearch.trial._rules import (
    NON_NEGATIVE,
    NON_NEGATIVE_INT,
    POSITIVE_INT,
    POSITIVE_INTS,
    POSITIVE_SECONDS,
    Rule,
    check,
    did_you_mean,
    in_range,
    one_of,
    plain,
)
from bnsearch.trial._seeds import confirmation_seed, layer_seed, trial_seed
from bnsearch.trial._space import (
    ACTIVATIONS,
    DEFAULT_PLACEMENTS,
    PLACEMENTS,
    BNConfig,
    FloatRange,
    SearchSpace,
    in_placement_order,
)

__all__ = [
    "DIVERGED_LOSS",
    "NON_NEGATIVE",
    "NON_NEGATIVE_INT",
    "POSITIVE_INT",
    "POSITIVE_INTS",
    "POSITIVE_SECONDS",
    "Rule",
    "check",
    "did_you_mean",
    "in_range",
    "one_of",
    "plain",
    "ACTIVATIONS",
    "BNConfig",
    "DEFAULT_PLACEMENTS",
    "FloatRange",
    "METRICS",
    "TASK_METRICS",
    "VERDICT_METRICS",
    "Phase",
    "PLACEMENTS",
    "SearchSpace",
    "StoredTrials",
    "TrialRecorder",
    "TrialResult",
    "TrialSpec",
    "TrialState",
    "confirmation_seed",
    "failure_epoch",
    "failure_kind",
    "in_placement_order",
    "is_divergence",
    "layer_seed",
    "lower_is_better",
    "process_alive",
    "trial_seed",
]
