"""The verdict from paired blocks: does BN help here, and before or after; no plotting.

Tests, intervals, the sequential (anytime-valid) rule and the verdict across datasets.
"""

from __future__ import annotations

from bnsearch.stats._across import (
    AcrossVerdict,
    compare_across,
    dataset_scores,
)
from bnsearch.stats._answers import Answer, PairComparison, budget_side
from bnsearch.stats._format import (
    MIN_BLOCKS_CI,
    MIN_IMPORTANCE_TRIALS,
    MIN_SEEDS_TO_RANK,
    RUNAWAY,
    counted,
    loss_text,
    plain,
    significant,
    too_few,
)
from bnsearch.stats._sequential import (
    ALPHA,
    BN_OUTCOMES,
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
    QUESTIONS,
    PlacementConfirmation,
    Verdict,
    analyze,
    best_per_placement,
    block_value,
    diverged,
    fixed_budget_side,
    holm,
    metric_value,
    verdict_for,
    without_ranking,
)

__all__ = [
    "ALPHA",
    "BN_OUTCOMES",
    "MIN_BLOCKS_CI",
    "MIN_IMPORTANCE_TRIALS",
    "MIN_SEEDS_TO_RANK",
    "QUESTIONS",
    "AcrossVerdict",
    "Answer",
    "PairComparison",
    "PlacementConfirmation",
    "Verdict",
    "analyze",
    "best_per_placement",
    "block_value",
    "budget_side",
    "bn_outcomes",
    "closed_test",
    "compare_across",
    "counted",
    "confidence_bounds",
    "dataset_scores",
    "diverged",
    "fixed_budget_side",
    "holm",
    "median_confidence_sequence",
    "metric_value",
    "min_blocks_to_settle",
    "plain",
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
    "without_ranking",
]
