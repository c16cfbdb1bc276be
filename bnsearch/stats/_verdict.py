"""Does placement matter? Paired comparisons over blocks, seed-confirmed best-vs-best, a verdict.

The design: a *block* is a set of trials that share every hyperparameter and the seed (hence
the initial Dense weights, batch order and dropout masks) and differ only in placement. For
each pair of placements the analysis takes the within-block differences of the study's
metric (final validation loss by default; lower is better) over blocks where both trials
completed, and reports:

* the median and mean difference, a bootstrap 95 % confidence interval of the median
  (``scipy.stats.bootstrap``, percentile, 4,999 resamples), the Wilcoxon signed-rank
  p-value (``scipy.stats.wilcoxon``) with Holm's correction across the pairs, and the
  effect size ``d_z = mean(d) / sd(d)``.

The verdict rests on the median, not the mean: a trial whose loss blew up to 1e17 without
becoming NaN (ReLU networks on raw features do) moves the mean, and its interval, by
orders of magnitude, while the median and the rank-based Wilcoxon test describe the
typical block. The mean is still reported beside it.

The verdict answers the thread's question, ``before`` against ``after``, with a practical
threshold ``delta`` (default 0.01 in validation loss or accuracy):

* the interval lies wholly beyond ``-delta`` or ``+delta`` and the Holm-corrected p < 0.05:
  the better placement wins;
* the interval lies wholly inside ``(-delta, +delta)``: no placement effect larger than the
  threshold (an effect may be statistically detectable yet smaller than ``delta``);
* otherwise: inconclusive, with the number of extra blocks estimated to shrink the interval
  enough (the half-width falls as ``1 / sqrt(n)``).

Blocks with a failed or pruned member are left out of the pairs; their count is reported per
placement so that a placement that often diverges is visible rather than silently dropped.

Two rules decide, as the study was run (``until``):

* ``budget`` (a fixed number of blocks, looked at once): the bootstrap interval and the
  Holm-corrected Wilcoxon test above;
* ``settled`` (looked at after every batch, stopped when the answer is known): the
  anytime-valid confidence sequence of :mod:`bnsearch.stats` alone, since a bootstrap
  interval or a p-value read after every batch would not keep its 5 %. "Settled" means
  the sequence lies wholly beyond the threshold (placement matters) or wholly inside
  ``(-delta, +delta)`` (no effect larger than the threshold); a study that reaches its cap
  first is inconclusive, with the sequence as its interval.

The sequence is reported for every pair under both rules.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from bnsearch.config import DEFAULT_THRESHOLD
from bnsearch.stats._sequential import (
    ALPHA,
    median_confidence_sequence,
    min_blocks_to_settle,
    settle,
)
from bnsearch.trial import Phase, TrialResult, TrialState, lower_is_better

__all__ = [
    "PairComparison",
    "PlacementConfirmation",
    "Verdict",
    "analyze",
    "best_per_placement",
    "fixed_budget_side",
    "holm",
    "metric_value",
    "verdict_for",
]


def metric_value(result: TrialResult, metric: str) -> float | None:
    """The final-epoch value of ``metric`` for a completed trial, else None."""
    if result.state is not TrialState.COMPLETE:
        return None
    value = result.final(metric)
    return value if value is not None and math.isfinite(value) else None


def best_per_placement(results: Sequence[TrialResult]) -> list[TrialResult]:
    """The completed search trial with the lowest objective for each placement."""
    best: dict[str, TrialResult] = {}
    for result in results:
        if result.spec.phase != Phase.SEARCH or result.value is None:
            continue
        current = best.get(result.config.placement)
        if current is None or result.value < current.value:
            best[result.config.placement] = result
    return list(best.values())


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (scipy offers Bonferroni-Holm only via statsmodels)."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted = [1.0] * len(p_values)
    running = 0.0
    m = len(p_values)
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


@dataclass(frozen=True)
class PairComparison:
    """``first − second`` over blocks; for a loss, a negative mean favours ``first``."""

    first: str
    second: str
    n_blocks: int
    mean: float
    median: float
    ci_low: float  # 95 % bootstrap interval of the median
    ci_high: float
    p_value: float
    p_holm: float
    effect_size: float
    cs_low: float = -math.inf  # anytime-valid 95 % confidence sequence of the median
    cs_high: float = math.inf
    differences: tuple[float, ...] = field(repr=False, default=())


@dataclass(frozen=True)
class PlacementConfirmation:
    """The best configuration of one placement re-trained with fresh seeds."""

    placement: str
    params: dict[str, Any]
    values: tuple[float, ...]

    @property
    def mean(self) -> float:
        return float(np.mean(self.values)) if self.values else math.nan

    @property
    def std(self) -> float:
        return float(np.std(self.values, ddof=1)) if len(self.values) > 1 else math.nan


@dataclass(frozen=True)
class Verdict:
    """bnsearch's statement about placement for one dataset."""

    metric: str
    threshold: float
    outcome: str  # "before" | "after" | "no-effect" | "inconclusive" | "insufficient"
    statement: str
    n_blocks: int
    primary: PairComparison | None
    pairs: tuple[PairComparison, ...]
    excluded_blocks: dict[str, int]
    extra_blocks_needed: int | None
    confirmations: tuple[PlacementConfirmation, ...] = ()
    importances: dict[str, float] = field(default_factory=dict)
    # When the study searches the activation: the same analysis within each activation.
    by_activation: dict[str, Verdict] = field(default_factory=dict)
    until: str = "budget"  # the rule that decided (see the module docstring)

    @property
    def settled(self) -> bool:
        """Whether a study run ``--until settled`` may stop: its verdict and each
        activation's are decided by the confidence sequence."""
        decided = self.outcome not in ("inconclusive", "insufficient")
        return decided and all(v.settled for v in self.by_activation.values())

    def summary_lines(self) -> list[str]:
        lines = [f"Verdict ({self.metric}, threshold {self.threshold:g}): {self.statement}"]
        for pair in self.pairs:
            lines.append(
                f"  {pair.first} − {pair.second}: median {pair.median:+.4f} "
                f"[95% CI {pair.ci_low:+.4f}, {pair.ci_high:+.4f}], mean {pair.mean:+.4g}, "
                f"d_z {pair.effect_size:+.2f}, Wilcoxon p {pair.p_value:.3g} "
                f"(Holm {pair.p_holm:.3g}), anytime-valid CS "
                f"[{pair.cs_low:+.4f}, {pair.cs_high:+.4f}], {pair.n_blocks} blocks"
            )
        for conf in self.confirmations:
            if not conf.values:
                lines.append(
                    f"  best {conf.placement}: no fresh-seed run completed (each diverged or "
                    "failed)"
                )
                continue
            lines.append(
                f"  best {conf.placement}: {self.metric} {conf.mean:.4f} ± {conf.std:.4f} "
                f"(sd over {len(conf.values)} fresh seeds)"
            )
        if self.importances:
            ranked = sorted(self.importances.items(), key=lambda kv: -kv[1])
            lines.append(
                "  importance: " + ", ".join(f"{name} {value:.2f}" for name, value in ranked)
            )
        for activation, verdict in self.by_activation.items():
            lines.append(f"  with {activation}: {verdict.statement}")
        return lines


def _blocks(results: Sequence[TrialResult]) -> dict[int, list[TrialResult]]:
    blocks: dict[int, list[TrialResult]] = {}
    for result in results:
        if result.spec.block is not None and result.spec.block >= 0:
            blocks.setdefault(result.spec.block, []).append(result)
    return blocks


def _compare(first: str, second: str, diffs: np.ndarray, seed: int) -> dict[str, float]:
    from scipy import stats

    n = len(diffs)
    mean = float(np.mean(diffs))
    median = float(np.median(diffs)) if n else math.nan
    if n >= 3 and np.ptp(diffs) > 0:
        ci = stats.bootstrap(
            (diffs,), np.median, confidence_level=0.95, n_resamples=4999, method="percentile",
            rng=np.random.default_rng(seed),
        ).confidence_interval  # fmt: skip
        low, high = float(ci.low), float(ci.high)
    else:
        low = high = median
    cs_low, cs_high = median_confidence_sequence(diffs, ALPHA)
    varies = n >= 2 and bool(np.any(diffs != 0))
    p_value = float(stats.wilcoxon(diffs).pvalue) if varies else 1.0
    sd = float(np.std(diffs, ddof=1)) if n > 1 else math.nan
    effect = mean / sd if sd and math.isfinite(sd) and sd > 0 else math.nan
    return {
        "mean": mean,
        "median": median,
        "ci_low": low,
        "ci_high": high,
        "p_value": p_value,
        "effect_size": effect,
        "cs_low": cs_low,
        "cs_high": cs_high,
    }


# long because it is one computation read top to bottom: blocks, pairs, tests, decision.
def analyze(
    results: Sequence[TrialResult],
    metric: str = "val_loss",
    threshold: float = DEFAULT_THRESHOLD,
    importances: dict[str, float] | None = None,
    confirmation_phase: Sequence[TrialResult] = (),
    seed: int = 0,
    until: str = "budget",
) -> Verdict:
    """Turn a study's TrialResults into a Verdict (nothing is trained here); ``until`` is
    the rule the study was run by (:data:`UNTIL`)."""
    blocks = _blocks([r for r in results if r.spec.phase == Phase.SEARCH])
    placements = sorted(
        {r.config.placement for rs in blocks.values() for r in rs}, key=_placement_rank
    )
    excluded = {p: 0 for p in placements}
    for members in blocks.values():
        for r in members:
            if metric_value(r, metric) is None:
                excluded[r.config.placement] += 1
    raw_pairs = []
    for first, second in itertools.combinations(placements, 2):
        diffs = []
        for members in blocks.values():
            by_placement = {r.config.placement: metric_value(r, metric) for r in members}
            a, b = by_placement.get(first), by_placement.get(second)
            if a is not None and b is not None:
                diffs.append(a - b)
        if diffs:
            raw_pairs.append((first, second, np.asarray(diffs, float)))
    stats_by_pair = [_compare(f, s, d, seed) for f, s, d in raw_pairs]
    adjusted = holm([s["p_value"] for s in stats_by_pair])
    pairs = tuple(
        PairComparison(
            first=f, second=s, n_blocks=len(d), p_holm=p, differences=tuple(d.tolist()), **st
        )
        for (f, s, d), st, p in zip(raw_pairs, stats_by_pair, adjusted, strict=True)
    )
    primary = next(
        (p for p in pairs if {p.first, p.second} == {"before", "after"}),
        pairs[0] if pairs else None,
    )
    decide = _decide_settled if until == "settled" else _decide
    outcome, statement, extra = decide(primary, metric, threshold)
    confirmations = _confirmations(confirmation_phase, metric)
    activations = sorted({r.config.activation for r in results if r.config.activation})
    by_activation = {}
    if len(activations) > 1:  # does the best placement depend on the activation?
        for activation in activations:
            by_activation[activation] = analyze(
                [r for r in results if r.config.activation == activation],
                metric=metric,
                threshold=threshold,
                confirmation_phase=[
                    r for r in confirmation_phase if r.config.activation == activation
                ],
                seed=seed,
                until=until,
            )
    return Verdict(
        metric=metric,
        threshold=threshold,
        outcome=outcome,
        statement=statement,
        n_blocks=primary.n_blocks if primary else 0,
        primary=primary,
        pairs=pairs,
        excluded_blocks=excluded,
        extra_blocks_needed=extra,
        confirmations=confirmations,
        importances=dict(importances or {}),
        by_activation=by_activation,
        until=until,
    )


def _placement_rank(placement: str) -> int:
    order = ("before", "after", "none", "before_output", "input")
    return order.index(placement) if placement in order else len(order)


def _decide(
    pair: PairComparison | None, metric: str, threshold: float
) -> tuple[str, str, int | None]:
    if pair is None or pair.n_blocks < 3:
        n = pair.n_blocks if pair else 0
        return (
            "insufficient",
            f"not enough paired blocks ({n}); run more trials (at least 3 complete blocks).",
            None,
        )
    low, high, median, n = pair.ci_low, pair.ci_high, pair.median, pair.n_blocks
    interval = (
        f"median difference {pair.first} − {pair.second} {median:+.4f}, "
        f"95% CI [{low:+.4f}, {high:+.4f}], mean {pair.mean:+.4g}, {n} blocks"
    )
    better_first = high < -threshold if lower_is_better(metric) else low > threshold
    better_second = low > threshold if lower_is_better(metric) else high < -threshold
    significant = pair.p_holm < 0.05
    if better_first and significant:
        return pair.first, f"`{pair.first}` is better than `{pair.second}` ({interval}).", None
    if better_second and significant:
        return pair.second, f"`{pair.second}` is better than `{pair.first}` ({interval}).", None
    if -threshold < low and high < threshold:
        note = " (detectable, but smaller than the threshold)" if significant else ""
        return (
            "no-effect",
            f"no placement effect larger than {threshold:g} between `{pair.first}` and "
            f"`{pair.second}`{note} ({interval}).",
            None,
        )
    half_width = (high - low) / 2
    target = abs(abs(median) - threshold)
    target = max(target, threshold / 4)
    needed = math.ceil(n * (half_width / target) ** 2) - n if half_width > target else 1
    needed = max(needed, 1)
    return (
        "inconclusive",
        f"inconclusive ({interval}); about {needed} more blocks should resolve it.",
        needed,
    )


def fixed_budget_side(differences: Sequence[float], threshold: float, seed: int = 0) -> str | None:
    """The fixed-budget rule on one pair's differences (a loss), in the terms of
    :func:`bnsearch.stats.settle`: for comparing the two rules on simulated studies."""
    diffs = np.asarray(differences, float)
    stats = _compare("first", "second", diffs, seed)
    pair = PairComparison("first", "second", len(diffs), p_holm=stats["p_value"], **stats)
    outcome = _decide(pair, "val_loss", threshold)[0]
    return {"first": "below", "second": "above", "no-effect": "inside"}.get(outcome)


def _decide_settled(
    pair: PairComparison | None, metric: str, threshold: float
) -> tuple[str, str, None]:
    """The rule of a study run until settled: the confidence sequence alone."""
    n = pair.n_blocks if pair else 0
    if pair is None or math.isinf(pair.cs_low) or math.isinf(pair.cs_high):
        return (
            "insufficient",
            f"not settled after {n} blocks: the anytime-valid interval cannot be bounded yet "
            f"(it needs at least {min_blocks_to_settle(ALPHA)} complete blocks); run more "
            "trials.",
            None,
        )
    low, high = pair.cs_low, pair.cs_high
    interval = (
        f"median difference {pair.first} − {pair.second} {pair.median:+.4f}, anytime-valid "
        f"95% CS [{low:+.4f}, {high:+.4f}], mean {pair.mean:+.4g}, {n} blocks"
    )
    side = settle(low, high, threshold)
    if side in ("below", "above"):
        first_better = (side == "below") == lower_is_better(metric)
        winner, loser = (pair.first, pair.second) if first_better else (pair.second, pair.first)
        return (
            winner,
            f"`{winner}` is better than `{loser}`: settled after {n} blocks, the interval "
            f"lies wholly beyond the threshold {threshold:g} ({interval}).",
            None,
        )
    if side == "inside":
        return (
            "no-effect",
            f"no placement effect larger than {threshold:g} between `{pair.first}` and "
            f"`{pair.second}`: settled after {n} blocks, the interval lies wholly inside "
            f"±{threshold:g} ({interval}).",
            None,
        )
    return (
        "inconclusive",
        f"inconclusive: not settled within {n} blocks, the interval still reaches across "
        f"the threshold {threshold:g} ({interval}); run the study again to add blocks (it "
        "resumes, and stops as soon as it settles).",
        None,
    )


def _confirmations(
    results: Sequence[TrialResult], metric: str
) -> tuple[PlacementConfirmation, ...]:
    by_placement: dict[str, list[TrialResult]] = {}
    for result in results:
        by_placement.setdefault(result.config.placement, []).append(result)
    out = []
    for placement in sorted(by_placement, key=_placement_rank):
        members = by_placement[placement]
        values = tuple(v for v in (metric_value(r, metric) for r in members) if v is not None)
        params = members[0].config.as_params()
        out.append(PlacementConfirmation(placement, params, values))
    return tuple(out)


def verdict_for(
    results: Sequence[TrialResult],
    metric: str = "val_loss",
    threshold: float = DEFAULT_THRESHOLD,
    importances: dict[str, float] | None = None,
    seed: int = 0,
    unpaired_reason: str | None = None,
    until: str = "budget",
) -> Verdict:
    """The verdict over a study's search trials and its latest confirmation round.

    ``unpaired_reason`` says why the trials are not paired blocks (a backend that does not
    pair them): the statement is then that reason, since no paired verdict can be given.
    """
    confirm = [r for r in results if r.spec.phase == Phase.CONFIRM]
    latest = max((r.spec.block or 0 for r in confirm), default=None)
    verdict = analyze(
        [r for r in results if r.spec.phase == Phase.SEARCH],
        metric=metric,
        threshold=threshold,
        importances=importances or {},
        confirmation_phase=[r for r in confirm if r.spec.block == latest],
        seed=seed,
        until=until,
    )
    if unpaired_reason is not None:
        verdict = replace(verdict, statement=unpaired_reason)
    return verdict
