"""The verdict from paired blocks (does BN help, before or after), and across datasets."""

from __future__ import annotations

from bnsearch.stats._across import AcrossVerdict, compare_across, dataset_scores
from bnsearch.stats._format import (
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
    confidence_bounds,
    min_blocks_to_settle,
    settle_against_none,
    settle_codes,
)
from bnsearch.stats._verdict import (
    ASKED,
    QUESTION_TEXT,
    PairComparison,
    PlacementConfirmation,
    Verdict,
    analyze,
    best_per_placement,
    diverged,
    fixed_budget_side,
    metric_value,
    quoted_questions,
    verdict_for,
)

__all__ = [
    "ALPHA",
    "ASKED",
    "QUESTION_TEXT",
    "AcrossVerdict",
    "Outcome",
    "PairComparison",
    "PlacementConfirmation",
    "Side",
    "Verdict",
    "analyze",
    "best_per_placement",
    "bn_outcomes",
    "compare_across",
    "counted",
    "confidence_bounds",
    "dataset_scores",
    "difference_text",
    "diverged",
    "fixed_budget_side",
    "metric_value",
    "min_blocks_to_settle",
    "quoted_questions",
    "settle_against_none",
    "settle_codes",
    "significant",
    "loss_text",
    "RUNAWAY",
    "too_few",
    "verdict_for",
]
