"""Advice when a learning-rate range runs away: the rates that diverged, at which epoch, and
a range to try in the study file's ``[space]`` table (or ``--standardize``)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from bnsearch.config import StudyConfig
from bnsearch.stats import diverged
from bnsearch.trial import Phase, TrialResult, TrialState, failure_epoch

#: The share of a batch's search trials that must diverge before the study advises.
DIVERGED_SHARE = 0.25


def divergence_advice(config: StudyConfig, batch: Sequence[TrialResult]) -> str | None:
    """One line when at least :data:`DIVERGED_SHARE` of the batch's search trials diverged,
    else None (``bnsearch: notice: 5 of 6 trials diverged (...) at learning rates 0.12 to
    0.29; the largest that trained below them was 0.011: try `[space] learning_rate =
    [0.001, 0.011]` in a study file, or --standardize.``)."""
    search = [r for r in batch if r.spec.phase == Phase.SEARCH]
    gone = [r for r in search if diverged(r)]
    if not gone or len(gone) < DIVERGED_SHARE * len(search):
        return None
    rates = sorted(r.config.learning_rate for r in gone)
    trained = [
        r.config.learning_rate
        for r in search
        if r.state is not TrialState.FAILED and r.config.learning_rate < rates[0]
    ]
    if trained:
        high = _round_down(max(trained))
        known = f"the largest that trained below them was {_rate(max(trained))}"
    else:
        high = _round_down(rates[0] / 10)
        known = "none trained below them"
    space = config.space.learning_rate
    low = space.low if space.low < high / 3 else _round_down(high / 30)
    scale = "" if config.standardize or config.network.images else ", or --standardize"
    return (
        f"bnsearch: notice: {len(gone)} of {len(search)} trials diverged (loss became inf or "
        f"nan {_epochs(gone)}) at {_span(rates)}; {known}: try `[space] "
        f"learning_rate = [{_rate(low)}, {_rate(high)}]` in a study file{scale}."
    )


def _epochs(results: Sequence[TrialResult]) -> str:
    found = sorted({e for r in results if (e := failure_epoch(r.fail_reason)) is not None})
    if not found:
        return "during training"
    if len(found) == 1:
        return f"at epoch {found[0]}"
    return f"at epochs {found[0]} to {found[-1]}"


def _span(rates: Sequence[float]) -> str:
    low, high = _rate(rates[0]), _rate(rates[-1])
    return f"learning rate {low}" if low == high else f"learning rates {low} to {high}"


def _rate(value: float) -> str:
    """Two significant digits, without an exponent from 1e-4 to 1e6 (``280``, ``0.0031``)."""
    return f"{float(f'{value:.2g}'):g}"


def _round_down(value: float) -> float:
    """``value`` down to two significant digits (an upper end must not round up into them)."""
    step = 10.0 ** (math.floor(math.log10(value)) - 1)
    return math.floor(value / step + 1e-9) * step
