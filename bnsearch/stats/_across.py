"""Does placement matter across datasets? Ranks, the Friedman test and Holm-corrected
pairwise Wilcoxon tests over a sweep's studies, after Demšar (2006) and Benavoli et al.
(2016) (see docs/guides/sweeps-and-schedules.md)."""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from bnsearch.stats._sequential import Outcome
from bnsearch.stats._verdict import Verdict, block_value, holm, paired_blocks
from bnsearch.trial import TrialResult, in_placement_order, lower_is_better

#: Nemenyi's q at 5 % (studentized range / sqrt 2) by placements (Demšar, Table 5a).
_NEMENYI_Q05 = {2: 1.960, 3: 2.343, 4: 2.569, 5: 2.728, 6: 2.850, 7: 2.949, 8: 3.031}


@dataclass(frozen=True)
class DatasetScores:
    """One study's contribution: its verdict and a score per placement."""

    study: str
    verdict: Verdict
    scores: dict[str, float]  # median final metric over complete blocks, per placement
    differences: dict[tuple[str, str], float]  # the study's median paired differences, both ways


@dataclass(frozen=True)
class PairAcross:
    first: str
    second: str
    datasets: int
    first_better: int  # datasets where the median paired difference favours ``first``
    second_better: int
    p_value: float
    p_holm: float


@dataclass(frozen=True)
class AcrossVerdict:
    metric: str
    placements: tuple[str, ...]
    datasets: tuple[DatasetScores, ...]
    mean_ranks: dict[str, float]
    friedman_p: float | None  # None: fewer than three placements or two datasets
    pairs: tuple[PairAcross, ...]
    critical_difference: float | None
    statement: str
    bn_statement: str = ""  # does BN help, per study and across the datasets


def dataset_scores(study: str, verdict: Verdict, results: Sequence[TrialResult]) -> DatasetScores:
    """A study's scores over its complete paired blocks (none without a ranking)."""
    if verdict.no_ranking is not None:
        return DatasetScores(study, verdict, {}, {})
    blocks = paired_blocks(results).values()
    values = [{r.config.placement: block_value(r, verdict.metric) for r in rs} for rs in blocks]
    placements = {p for v in values for p, x in v.items() if x is not None}
    complete = [v for v in values if set(v) == placements and None not in v.values()]
    scores = {p: float(np.median([m[p] for m in complete])) for p in placements if complete}
    differences = {(pair.first, pair.second): pair.median for pair in verdict.pairs}
    differences |= {(b, a): -d for (a, b), d in differences.items()}
    return DatasetScores(study, verdict, scores, differences)


def compare_across(datasets: Sequence[DatasetScores], metric: str) -> AcrossVerdict:
    """The verdict across the datasets with scores, each in its own metric's direction."""
    from scipy import stats

    usable = [d for d in datasets if d.scores]
    common = set.intersection(*(set(d.scores) for d in usable)) if usable else set()
    placements = tuple(in_placement_order(common))
    k, n = len(placements), len(usable)
    # Signed so that lower is better (rank 1, a negative difference favours ``first``)
    # whatever each study's metric.
    signs = np.array([1.0 if lower_is_better(d.verdict.metric) else -1.0 for d in usable])
    signed = [[s * d.scores[p] for p in placements] for s, d in zip(signs, usable, strict=True)]
    ranks = np.array([stats.rankdata(row) for row in signed]).reshape(n, k)
    mean_ranks = {p: float(ranks[:, i].mean()) for i, p in enumerate(placements)} if usable else {}
    friedman = None
    if k >= 3 and n >= 2:
        scores = [[d.scores[p] for d in usable] for p in placements]
        friedman = float(stats.friedmanchisquare(*scores).pvalue)
        if not math.isfinite(friedman):  # identical ranks everywhere: no evidence at all
            friedman = 1.0
    raw = []
    for first, second in itertools.combinations(placements, 2):
        # ``first − second`` as each study measured it (its median paired difference)
        diffs = signs * [
            d.differences.get((first, second), d.scores[first] - d.scores[second]) for d in usable
        ]
        varies = len(diffs) >= 2 and bool(np.any(diffs != 0))
        p = float(stats.wilcoxon(diffs).pvalue) if varies else 1.0
        better = int((diffs < 0).sum()), int((diffs > 0).sum())
        raw.append(PairAcross(first, second, len(diffs), *better, p, p))
    adjusted = holm([pair.p_value for pair in raw])
    pairs = tuple(replace(pair, p_holm=p) for pair, p in zip(raw, adjusted, strict=True))
    cd = _NEMENYI_Q05[k] * math.sqrt(k * (k + 1) / (6 * n)) if k in _NEMENYI_Q05 and n else None
    across = AcrossVerdict(metric, placements, tuple(usable), mean_ranks, friedman, pairs, cd, "")
    return replace(across, statement=_statement(across), bn_statement=_bn_statement(usable, pairs))


def _tally(words: Sequence[str]) -> str:
    """``BN helps 3, BN does not help 1``: each answer and how many studies gave it."""
    return ", ".join(f"{word} {count}" for word, count in Counter(words).most_common())


def _bn_statement(usable: Sequence[DatasetScores], pairs: Sequence[PairAcross]) -> str:
    """Does BN help: the studies' answers, and each BN placement against ``none`` across
    the datasets (Holm-corrected with the other pairs)."""
    asked = [d.verdict.bn for d in usable if d.verdict.bn.outcome != Outcome.NOT_COMPARED]
    if not asked:
        return "Does BN help? not asked: no study compares `none` with a BN placement."
    against = [
        p if p.second == "none" else _swapped(p) for p in pairs if "none" in (p.first, p.second)
    ]
    across = "; ".join(
        f"`{p.first}` against `none`: better in {p.first_better} of {p.datasets}, Holm p "
        f"{p.p_holm:.3g}"
        for p in against
    )
    tally = f"Does BN help? per study: {_tally([a.short for a in asked])} (of {len(asked)})"
    return tally + (f"; across datasets: {across}." if across else ".")


def _statement(verdict: AcrossVerdict) -> str:
    n, friedman, mean_ranks = len(verdict.datasets), verdict.friedman_p, verdict.mean_ranks
    if n < 2 or len(verdict.placements) < 2:
        return (
            f"no verdict across datasets: {n} studies with paired blocks of common placements "
            "(two or more are needed); run the sweep's studies first."
        )
    found = "; ".join(
        f"`{p.first}` beats `{p.second}` (Holm p {p.p_holm:.3g}, in {p.first_better} of "
        f"{p.datasets})"
        for p in (q if q.first_better > q.second_better else _swapped(q) for q in verdict.pairs)
        if p.p_holm < 0.05
    )
    if not found and 2 / 2**n >= 0.05:
        found = (
            f"the pairwise tests cannot reach 5 % with {n} datasets (smallest possible p "
            f"{2 / 2**n:.3g}); add datasets to compare pairs"
        )
    found = found or "no pair is separated by the Holm-corrected Wilcoxon tests"
    friedman_text = "Friedman test not applicable (two placements)"
    head = "no consistent placement difference across datasets"
    if friedman is not None:
        friedman_text = f"Friedman p {friedman:.3g}"
        head = "placements differ consistently across datasets" if friedman < 0.05 else head
    ranks = ", ".join(
        f"{p} {mean_ranks[p]:.2f}" for p in sorted(verdict.placements, key=mean_ranks.__getitem__)
    )
    placement = _tally([d.verdict.outcome for d in verdict.datasets])
    bn = _tally([d.verdict.bn.short for d in verdict.datasets])
    return (
        f"{head} ({n} datasets; mean rank {ranks}; {friedman_text}); {found}. Per-study "
        f"verdicts: before or after? {placement}; does BN help? {bn}."
    )


def _swapped(pair: PairAcross) -> PairAcross:
    """The same pair, ``second − first``."""
    return replace(
        pair, first=pair.second, second=pair.first, first_better=pair.second_better,
        second_better=pair.first_better,
    )  # fmt: skip
