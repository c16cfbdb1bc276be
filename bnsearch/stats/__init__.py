"""The verdict from paired blocks: tests, intervals, sequential rule, across datasets."""

from __future__ import annotations

from bnsearch.stats._across import (
    AcrossVerdict,
    compare_across,
    dataset_scores,
)
from bnsearch.stats._sequential import (
    ALPHA,
    median_confidence_sequence,
    min_blocks_to_settle,
    ruling_count,
    settle,
    sign_e_value,
)
from bnsearch.stats._verdict import (
    PlacementConfirmation,
    Verdict,
    analyze,
    best_per_placement,
    fixed_budget_side,
    holm,
    metric_value,
    verdict_for,
)

__all__ = [
    "ALPHA",
    "AcrossVerdict",
    "PlacementConfirmation",
    "Verdict",
    "analyze",
    "best_per_placement",
    "compare_across",
    "dataset_scores",
    "fixed_budget_side",
    "holm",
    "median_confidence_sequence",
    "metric_value",
    "min_blocks_to_settle",
    "ruling_count",
    "settle",
    "sign_e_value",
    "verdict_for",
]
