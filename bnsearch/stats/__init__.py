"""The verdict from paired blocks: does BN help here, and before or after; no plotting.

Tests, intervals, the sequential (anytime-valid) rule and the verdict across datasets.
"""

from __future__ import annotations

from bnsearch.stats._across import (
    AcrossVerdict,
    compare_across,
    dataset_scores,
)
from bnsearch.stats._format import (
    MIN_IMPORTANCE_TRIALS,
    RUNAWAY,
    counted,
    difference_text,
    loss_text,
    significant,
    too_few,
)
from bnsearch.stats._sequential import (
    ALPHA,
    Outcome,
    Side,
    bn_outcomes,
    closed_test,
    confidence_bounds,
    median_confidence_sequence,
    min_blocks_to_settle,
    ruling_count,
    selection_test,
    settle,
    settle_against_none,
    settle_codes,
    sign_e_value,
)
from bnsearch.stats._verdict import (
    ASKED,
    QUESTION_TEXT,
    QUESTIONS,
    Answer,
    PairComparison,
    PlacementConfirmation,
    Verdict,
    analyze,
    best_per_placement,
    diverged,
    fixed_budget_side,
    holm,
    metric_value,
    quoted_questions,
    verdict_for,
)
from bnsearch.trial import plain

__all__ = [
    "ALPHA",
    "ASKED",
    "MIN_IMPORTANCE_TRIALS",
    "QUESTIONS",
    "QUESTION_TEXT",
    "AcrossVerdict",
    "Answer",
    "Outcome",
    "PairComparison",
    "PlacementConfirmation",
    "Side",
    "Verdict",
    "analyze",
    "best_per_placement",
    "bn_outcomes",
    "closed_test",
    "compare_across",
    "counted",
    "confidence_bounds",
    "dataset_scores",
    "difference_text",
    "diverged",
    "fixed_budget_side",
    "holm",
    "median_confidence_sequence",
    "metric_value",
    "min_blocks_to_settle",
    "plain",
    "quoted_questions",
    "ruling_count",
    "selection_test",
    "settle",
    "settle_against_none",
    "settle_codes",
    "sign_e_value",
    "significant",
    "loss_text",
    "RUNAWAY",
    "too_few",
    "verdict_for",
]
