"""The verdict from paired blocks: each pair of placements compared over the blocks where
both trials completed (a diverged trial losing its block), both questions answered by the
study's rule, and the confirmation round set beside them (see
docs/explanation/the-two-questions.md)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from bnsearch.config import DEFAULT_THRESHOLD, QUESTIONS
from bnsearch.stats._answers import (
    ASKED,
    Answer,
    PairComparison,
    answer_bn,
    answer_placement,
    budget_side,
    quoted_questions,
)
from bnsearch.stats._format import (
    MIN_BLOCKS_CI,
    MIN_IMPORTANCE_TRIALS,
    MIN_SEEDS_TO_RANK,
    RUNAWAY,
    counted,
    plain,
    significant,
)
from bnsearch.stats._sequential import (
    ALPHA,
    Outcome,
    Side,
    median_confidence_sequence,
    min_blocks_to_settle,
)
from bnsearch.trial import (
    DIVERGED_LOSS,
    Phase,
    TrialResult,
    TrialState,
    in_placement_order,
    is_divergence,
    lower_is_better,
)


def metric_value(result: TrialResult, metric: str) -> float | None:
    """The final-epoch value of ``metric`` for a completed trial, else None."""
    if result.state is not TrialState.COMPLETE:
        return None
    value = result.final(metric)
    return value if value is not None and math.isfinite(value) else None


def diverged(result: TrialResult) -> bool:
    """Whether the trial failed by the NaN rule (its loss ran away), not by an exception."""
    return result.state is TrialState.FAILED and is_divergence(result.fail_reason)


def block_value(result: TrialResult, metric: str) -> float | None:
    """A trial's value in its paired block: its final ``metric``, the worst value for one
    that diverged, None for one pruned or failed otherwise."""
    if diverged(result):
        return DIVERGED_LOSS if lower_is_better(metric) else 0.0
    return metric_value(result, metric)


def best_per_placement(results: Sequence[TrialResult]) -> list[TrialResult]:
    """The completed search trial with the lowest objective for each placement."""
    best: dict[str, TrialResult] = {}
    lowest: dict[str, float] = {}  # each best's value
    for result in results:
        if result.spec.phase != Phase.SEARCH or result.value is None:
            continue
        placement = result.config.placement
        if placement not in lowest or result.value < lowest[placement]:
            best[placement], lowest[placement] = result, result.value
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
class PlacementConfirmation:
    """The best configuration of one placement re-trained with fresh seeds."""

    placement: str
    params: dict[str, Any]
    values: tuple[float, ...]  # the final metric of each fresh seed that completed
    failed: int = 0  # fresh seeds that diverged or failed, so have no value

    @property
    def kept(self) -> tuple[float, ...]:
        """The seeds' values without the run-aways, which would make the mean one."""
        return tuple(v for v in self.values if abs(v) < RUNAWAY)

    @property
    def ran_away(self) -> int:
        return len(self.values) - len(self.kept)

    @property
    def mean(self) -> float:
        return float(np.mean(self.kept)) if self.kept else math.nan

    @property
    def std(self) -> float:
        return float(np.std(self.kept, ddof=1)) if len(self.kept) > 1 else math.nan

    @property
    def ranked(self) -> bool:
        """Whether it has seeds enough for a standard deviation and a place in the ranking."""
        return len(self.kept) >= MIN_SEEDS_TO_RANK

    def left_out(self, more: str = " more") -> list[str]:
        """The seeds its mean leaves out, and why (``1 more diverged or failed``, ...)."""
        parts = [f"{self.failed}{more} diverged or failed"] * bool(self.failed)
        return parts + [f"{self.ran_away}{more} ran away"] * bool(self.ran_away)

    @property
    def left_out_text(self) -> str:
        return "; ".join(self.left_out())

    @property
    def lost(self) -> str:
        """Why no fresh-seed run counts, where none does."""
        return "ran away, diverged or failed" if self.ran_away else "diverged or failed"

    @property
    def summary(self) -> str:
        """``0.4701 ± 0.0042 (sd over 3 fresh seeds)``, ``0.4701 (1 fresh seed: no sd)``."""
        seeds = counted(len(self.kept), "fresh seed")
        away = f"; {self.left_out_text}" if self.left_out_text else ""
        if not self.ranked:
            return f"{significant(self.mean)} ({seeds}: no sd{away})"
        return f"{significant(self.mean)} ± {significant(self.std, 2)} (sd over {seeds}{away})"


@dataclass(frozen=True)
class Verdict:
    """bnsearch's statement about BN and its placement for one dataset: ``bn`` answers
    "does BN help here?", ``placement`` "before or after?"; ``statement`` carries both."""

    metric: str
    threshold: float
    statement: str
    n_blocks: int
    primary: PairComparison | None
    pairs: tuple[PairComparison, ...]
    excluded_blocks: dict[str, int]
    placement: Answer
    bn: Answer
    confirmations: tuple[PlacementConfirmation, ...] = ()
    importances: dict[str, float] = field(default_factory=dict)
    # Per placement: its trials that diverged, each counted as losing its block.
    diverged_blocks: dict[str, int] = field(default_factory=dict)
    # When the study searches the activation: the same analysis within each activation.
    by_activation: dict[str, Verdict] = field(default_factory=dict)
    until: str = "budget"  # the rule that decided (see the module docstring)
    question: str = "both"  # what a study run until settled waits for (QUESTIONS)
    unpaired: str | None = None  # why the trials are not paired blocks, when they are not
    # Why the validation rows cannot rank the placements: neither question is answered.
    no_ranking: str | None = None
    importance_note: str = ""  # why no importances are shown, when there are none

    @property
    def unanswered(self) -> str | None:
        """Why no paired comparison is shown; None when one is."""
        return self.unpaired if self.unpaired is not None else self.no_ranking

    @property
    def outcome(self) -> str:
        return self.placement.outcome

    @property
    def extra_blocks_needed(self) -> int | None:
        return self.placement.extra_blocks_needed

    @property
    def answers(self) -> tuple[Answer, Answer]:
        return self.bn, self.placement

    @property
    def open_questions(self) -> list[str]:
        """The questions asked that are not settled, here or within an activation."""
        asked = [a for a in self.answers if a.question in ASKED[self.question]]
        open_ = [a.question for a in asked if not a.decided]
        for sub in self.by_activation.values():
            open_ += [q for q in sub.open_questions if q not in open_]
        return [q for q in ("bn", "placement") if q in open_]

    @property
    def settled(self) -> bool:
        """Whether a study run ``--until settled`` may stop."""
        return not self.open_questions

    @property
    def still_open(self) -> str:
        """Until settled, when the study stopped with a question still open: which one, and
        what to do; else ``""``."""
        if self.until != "settled" or self.settled or self.unanswered is not None:
            return ""
        if self.n_blocks < min_blocks_to_settle(ALPHA):
            return ""  # the answers themselves say that more blocks are needed
        return _open_text(self)

    @property
    def words(self) -> str:
        """Both answers in a few words."""
        if self.no_ranking is not None:
            return "neither question is answered"
        return "; ".join(a.words for a in self.answers if a.outcome != Outcome.NOT_COMPARED)

    @property
    def headline(self) -> str:
        """Both answers in a few words and how they were reached."""
        words = self.words
        if self.no_ranking is not None:
            return f"{words} ({counted(self.n_blocks, 'block')}): {self.no_ranking}"
        if self.until != "settled":
            return f"{words} ({counted(self.n_blocks, 'block')}, fixed budget)"
        if self.settled:
            return f"{words} (settled after {counted(self.n_blocks, 'block')})"
        still = quoted_questions(self.open_questions)
        return f"{words} (not settled within {counted(self.n_blocks, 'block')}: {still} still open)"

    @property
    def input_control(self) -> str:
        """Whether the placement winner's advantage survives against ``input`` (BN on the raw
        inputs only, which measures input scaling), when both are there; else ``""``."""
        winner = self.placement.outcome
        pair = next((p for p in self.pairs if {p.first, p.second} == {winner, "input"}), None)
        if pair is None or winner == "input":
            return ""
        control = answer_placement(pair, self.threshold, self.until, lower_is_better(self.metric))
        against = f"against BN on the inputs alone (`input`), {control.statement}"
        if control.outcome == winner:
            return f"Control: `{winner}`'s advantage survives {against}"
        if control.decided:
            return (
                f"Control: `{winner}`'s advantage does not survive {against} "
                "What it gains over the other placement is mostly input scaling here."
            )
        return f"Control: whether `{winner}`'s advantage survives is open {against}"

    @property
    def disagreements(self) -> list[str]:
        """Where the confirmation round's ranking disagrees with the blocks, and why."""
        return _disagreements(self)

    @property
    def seeds_note(self) -> str:
        """``1 seed: no ranking`` when no confirmed best can be ranked; else ``""``."""
        if not self.confirmations or any(c.ranked for c in self.confirmations):
            return ""
        seeds = max(len(c.values) + c.failed for c in self.confirmations)
        return f"{counted(seeds, 'seed')}: no ranking"

    def summary_lines(self) -> list[str]:
        lines = [
            f"Verdict ({self.metric}, threshold {self.threshold:g}): {self.headline}",
            f"  does BN help? {self.bn.statement}",
            f"  before or after? {self.placement.statement}",
        ]
        if self.no_ranking is not None:  # nothing ranked: no comparison, no confirmation
            return lines[:1] + self._importance_lines()
        if self.unpaired is not None:
            lines = [f"Verdict ({self.metric}, threshold {self.threshold:g}): {self.unpaired}"]
        if self.still_open:
            lines.append(f"  {self.still_open}")
        if self.input_control and self.unpaired is None:
            lines.append(f"  {self.input_control}")
        for pair in self.pairs:
            lines.append(
                f"  {pair.first} − {pair.second}: median {pair.median_text} "
                f"[95% CI {pair.ci_text.strip('[]')}], mean {pair.mean_text}, "
                f"d_z {pair.effect_text}, Wilcoxon p {pair.p_text} (Holm {pair.p_holm_text}), "
                f"anytime-valid CS {pair.cs_text}, {counted(pair.n_blocks, 'block')}"
            )
        for conf in self.confirmations:
            if not conf.kept:
                lines.append(
                    f"  best {conf.placement}: no fresh-seed run completed (each {conf.lost})"
                )
                continue
            lines.append(f"  best {conf.placement}: {self.metric} {conf.summary}")
        if self.seeds_note:
            lines.append(f"  fresh seeds: {self.seeds_note}")
        lines += [f"  {text}" for text in self.disagreements]
        lines += self._importance_lines()
        for activation, verdict in self.by_activation.items():
            lines.append(f"  with {activation}: {verdict.headline}")
        return lines

    def _importance_lines(self) -> list[str]:
        if self.importances:
            ranked = sorted(self.importances.items(), key=lambda kv: -kv[1])
            return ["  importance: " + ", ".join(f"{name} {v:.2f}" for name, v in ranked)]
        if self.importance_note:
            return [f"  hyperparameter importance left out: {self.importance_note}"]
        return []


def _open_text(verdict: Verdict) -> str:
    open_ = verdict.open_questions
    still = quoted_questions(open_)
    asked = ASKED[verdict.question]
    waits = "both answers" if len(asked) > 1 else quoted_questions(asked)
    settled = [q for q in asked if q not in open_]
    other = f"; --question {settled[0]} stops on the settled one alone" if settled else ""
    return (
        f"Not settled within {counted(verdict.n_blocks, 'block')}: {still} "
        f"{'is' if len(open_) == 1 else 'are'} still open (the study waits for {waits}, "
        f"--question {verdict.question}); run it again to add blocks{other}."
    )


def _blocks(results: Sequence[TrialResult]) -> dict[int, list[TrialResult]]:
    blocks: dict[int, list[TrialResult]] = {}
    for result in results:
        if result.spec.block is not None and result.spec.block >= 0:
            blocks.setdefault(result.spec.block, []).append(result)
    return dict(sorted(blocks.items()))


def _compare(
    diffs: np.ndarray, seed: int, tests: bool = True, pair: tuple[str, str] = ("first", "second")
) -> PairComparison:
    """One pair's statistics (``p_holm`` its own ``p_value``). The median, the intervals and
    Wilcoxon read every block; the mean and ``d_z`` only those without a run-away. What
    needs more blocks, or tests not asked for, is NaN."""
    from scipy import stats

    n = len(diffs)
    kept = diffs[np.abs(diffs) < RUNAWAY]
    mean = float(np.mean(kept)) if len(kept) else math.nan
    median = float(np.median(diffs)) if n else math.nan
    low = high = p_value = math.nan  # too few blocks for an interval, or no tests asked for
    if tests and n >= MIN_BLOCKS_CI:
        low = high = median  # every block the same difference: the interval is that point
        if np.ptp(diffs) > 0:
            ci = stats.bootstrap(
                (diffs,), np.median, confidence_level=0.95, n_resamples=4999,
                method="percentile", rng=np.random.default_rng(seed),
            ).confidence_interval  # fmt: skip
            low, high = float(ci.low), float(ci.high)
    if tests:
        varies = n >= 2 and bool(np.any(diffs != 0))
        p_value = float(stats.wilcoxon(diffs).pvalue) if varies else 1.0
    cs_low, cs_high = median_confidence_sequence(diffs, ALPHA)
    sd = float(np.std(kept, ddof=1)) if len(kept) > 1 else math.nan
    effect = mean / sd if sd and math.isfinite(sd) and sd > 0 else math.nan
    return PairComparison(
        *pair, n, mean, median, low, high, p_value, p_value, effect, cs_low, cs_high,
        differences=tuple(diffs.tolist()),
    )  # fmt: skip


def _pair_order(placements: Sequence[str]) -> list[tuple[str, str]]:
    """Every pair once, ``none`` always second (``p − none`` reads "what BN does")."""
    return [(s, f) if f == "none" else (f, s) for f, s in itertools.combinations(placements, 2)]


# long because it is one computation read top to bottom: blocks, pairs, tests, decisions.
def analyze(
    results: Sequence[TrialResult],
    metric: str = "val_loss",
    threshold: float = DEFAULT_THRESHOLD,
    importances: dict[str, float] | None = None,
    confirmation_phase: Sequence[TrialResult] = (),
    seed: int = 0,
    until: str = "budget",
    question: str = "both",
    decide_only: bool = False,
) -> Verdict:
    """Turn a study's TrialResults into a Verdict (nothing is trained here); ``until`` is
    the rule the study was run by, ``question`` what it waits for. ``decide_only``: until
    settled, skip the bootstrap intervals and Wilcoxon tests (NaN), which do not decide."""
    if question not in QUESTIONS:
        raise ValueError(f"question {question!r}: choose one of {', '.join(QUESTIONS)}")
    blocks = _blocks([r for r in results if r.spec.phase == Phase.SEARCH])
    placements = in_placement_order(r.config.placement for rs in blocks.values() for r in rs)
    excluded = {p: 0 for p in placements}
    lost = {p: 0 for p in placements}
    values: dict[int, dict[str, float | None]] = {}
    ran_away: dict[int, set[str]] = {}
    for block, members in blocks.items():
        values[block] = {r.config.placement: block_value(r, metric) for r in members}
        ran_away[block] = {r.config.placement for r in members if diverged(r)}
        for placement, value in values[block].items():
            excluded[placement] += value is None
            lost[placement] += placement in ran_away[block]
    raw_pairs = []
    for first, second in _pair_order(placements):
        diffs, where = [], []
        for block, by_placement in values.items():
            a, b = by_placement.get(first), by_placement.get(second)
            both_diverged = {first, second} <= ran_away[block]  # says nothing of either
            if a is not None and b is not None and not both_diverged:
                diffs.append(a - b)
                where.append(block)
        if diffs:
            raw_pairs.append((first, second, np.asarray(diffs, float), tuple(where)))
    tests = not (decide_only and until == "settled")
    compared = [_compare(d, seed, tests, (f, s)) for f, s, d, _ in raw_pairs]
    p_values = [pair.p_value for pair in compared]
    adjusted = holm(p_values) if tests else p_values  # NaN: no test
    pairs = tuple(
        replace(pair, p_holm=p, blocks=w)
        for pair, p, (*_, w) in zip(compared, adjusted, raw_pairs, strict=True)
    )
    primary = next(
        (p for p in pairs if {p.first, p.second} == {"before", "after"}),
        pairs[0] if pairs else None,
    )
    lower = lower_is_better(metric)
    placement_answer = answer_placement(primary, threshold, until, lower)
    against_none = tuple(p for p in pairs if p.second == "none")
    matrix = np.full((len(values), len(against_none)), math.nan)
    row = {block: i for i, block in enumerate(values)}
    for j, pair in enumerate(against_none):
        for block, difference in zip(pair.blocks, pair.differences, strict=True):
            matrix[row[block], j] = difference
    bn = answer_bn(against_none, matrix, threshold, until, lower, excluded)
    confirmations = _confirmations(confirmation_phase, metric)
    activations = sorted({r.config.activation for r in results if r.config.activation})
    by_activation = {}
    if len(activations) > 1:  # does the answer depend on the activation?
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
                question=question,
                decide_only=decide_only,
            )
    verdict = Verdict(
        metric=metric,
        threshold=threshold,
        statement="",
        n_blocks=primary.n_blocks if primary else 0,
        primary=primary,
        pairs=pairs,
        excluded_blocks=excluded,
        diverged_blocks=lost,
        placement=placement_answer,
        bn=bn,
        confirmations=confirmations,
        **_importances(results, importances or {}),
        by_activation=by_activation,
        until=until,
        question=question,
    )
    return replace(verdict, statement=_statement(verdict))


def _importances(results: Sequence[TrialResult], importances: dict[str, float]) -> dict[str, Any]:
    """The verdict's importances, or why there are none (too few trials: they rank noise)."""
    search = [r for r in results if r.spec.phase == Phase.SEARCH]
    complete = sum(r.state is TrialState.COMPLETE for r in search)
    if complete >= MIN_IMPORTANCE_TRIALS:
        return {"importances": dict(importances)}
    note = (
        f"{counted(complete, 'completed search trial')}; it needs at least {MIN_IMPORTANCE_TRIALS}"
    )
    return {"importances": {}, "importance_note": note}


def _statement(verdict: Verdict) -> str:
    """Both answers, the BN question first; at the cap, which one is still open."""
    bn, placement = verdict.bn.statement, verdict.placement.statement
    text = f"Does BN help? {bn} Before or after? {placement}"
    if verdict.bn.outcome == Outcome.NOT_COMPARED:
        text = verdict.placement.statement
    return f"{text} {verdict.still_open}".strip()


def fixed_budget_side(differences: Sequence[float], threshold: float, seed: int = 0) -> Side:
    """The fixed-budget rule on one pair's differences (a loss): for comparing the two rules
    on simulated studies."""
    diffs = np.asarray(differences, float)
    return budget_side(_compare(diffs, seed), threshold) if len(diffs) >= 3 else Side.OPEN


def _confirmations(
    results: Sequence[TrialResult], metric: str
) -> tuple[PlacementConfirmation, ...]:
    by_placement: dict[str, list[TrialResult]] = {}
    for result in results:
        by_placement.setdefault(result.config.placement, []).append(result)
    out = []
    for placement in in_placement_order(by_placement):
        members = by_placement[placement]
        values = tuple(v for v in (metric_value(r, metric) for r in members) if v is not None)
        params = {k: plain(v) for k, v in members[0].config.as_params().items()}
        failed = sum(r.state is TrialState.FAILED for r in members)
        out.append(PlacementConfirmation(placement, params, values, failed))
    return tuple(out)


def _claims(verdict: Verdict) -> list[tuple[str, str]]:
    """What the blocks settled, as (better, worse) pairs of placements."""
    claims = []
    if verdict.placement.loser is not None:
        claims.append((verdict.placement.outcome, verdict.placement.loser))
    for placement, side in verdict.bn.sides.items():
        if side is Side.BELOW:
            claims.append((placement, "none"))
        elif side is Side.ABOVE:
            claims.append(("none", placement))
    return claims


def _disagreements(verdict: Verdict) -> list[str]:
    # One seed is one run, not a mean to rank by; validation rows that cannot rank the
    # placements rank nothing.
    runs = {c.placement: c for c in verdict.confirmations if c.ranked}
    if len(runs) < 2 or verdict.no_ranking is not None:
        return []
    sign = 1.0 if lower_is_better(verdict.metric) else -1.0
    ranked = sorted(runs, key=lambda p: sign * runs[p].mean)

    def ahead(a: str, b: str) -> bool:  # a's tuned best beats b's by more than the threshold
        return sign * (runs[b].mean - runs[a].mean) > verdict.threshold

    def seen(a: str, b: str) -> str:  # "`none` 0.1112 ± 0.0021 against `after` 0.1349 ± ..."
        text = " against ".join(
            f"`{p}` {significant(runs[p].mean)}"
            + (f" ± {significant(runs[p].std, 2)}" if len(runs[p].kept) > 1 else "")
            for p in (a, b)
        )
        spread = math.sqrt(sum(np.var(runs[p].kept, ddof=1) / len(runs[p].kept)
                               if len(runs[p].kept) > 1 else 0.0 for p in (a, b)))  # fmt: skip
        noisy = abs(runs[a].mean - runs[b].mean) < 2 * spread
        return text + (", within twice the seeds' standard error" if noisy else "")

    claims = _claims(verdict)
    said = [
        f"the blocks say `{better}` beats `{worse}`, the fresh-seed confirmation ranks "
        f"`{worse}` ahead ({seen(worse, better)})"
        for better, worse in claims
        if better in runs and worse in runs and ahead(worse, better)
    ]
    head = "fresh seeds and blocks disagree: "
    first, runner_up = ranked[0], ranked[1]
    unsettled = [p for p in ranked[1:] if (first, p) not in claims]
    if not said and ahead(first, runner_up) and unsettled:
        head = "fresh seeds go further: "
        said.append(
            f"the fresh-seed confirmation ranks `{first}` first ({seen(first, runner_up)}), "
            f"which the blocks do not settle (`{first}` against "
            f"{', '.join(f'`{p}`' for p in unsettled)})"
        )
    if not said:
        return []
    return [
        head
        + "; ".join(said)
        + ". They answer different questions: a block compares the placements at one "
        "configuration the search drew, so the verdict is about a typical configuration "
        "(the median block), while the confirmation re-trains each placement's own tuned "
        "best; a placement can lose at a typical configuration and still have the best "
        "tuned one (it may want, e.g., another learning rate), or the reverse. For the "
        "best model, take the confirmation's ranking; for what BN and its placement do to "
        "a given configuration, the blocks'."
    ]


def verdict_for(
    results: Sequence[TrialResult],
    metric: str = "val_loss",
    threshold: float = DEFAULT_THRESHOLD,
    importances: dict[str, float] | None = None,
    seed: int = 0,
    unpaired_reason: str | None = None,
    until: str = "budget",
    question: str = "both",
    no_ranking_reason: str | None = None,
    decide_only: bool = False,
) -> Verdict:
    """The verdict over a study's search trials and its latest confirmation round;
    ``unpaired_reason`` (the trials are not paired blocks) or ``no_ranking_reason`` (the
    validation rows cannot rank the placements) says why none is given."""
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
        question=question,
        decide_only=decide_only,
    )
    if unpaired_reason is not None:
        verdict = replace(verdict, statement=unpaired_reason, unpaired=unpaired_reason)
    if no_ranking_reason is not None:
        verdict = without_ranking(verdict, no_ranking_reason)
    return verdict


def without_ranking(verdict: Verdict, reason: str) -> Verdict:
    """``verdict`` with neither question answered, because of ``reason``, here or per
    activation."""
    reason = reason.strip().rstrip(".") + "."

    def unanswered(answer: Answer) -> Answer:
        if answer.outcome == Outcome.NOT_COMPARED:
            return answer
        return Answer(answer.question, Outcome.UNANSWERED, f"not answered: {reason}")

    return replace(
        verdict,
        bn=unanswered(verdict.bn),
        placement=unanswered(verdict.placement),
        statement=f"Neither question is answered: {reason}",
        no_ranking=reason,
        by_activation={a: without_ranking(sub, reason) for a, sub in verdict.by_activation.items()},
    )
