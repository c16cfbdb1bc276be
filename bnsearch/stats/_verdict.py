"""The verdict from paired blocks: both questions answered by the study's rule, the
confirmation round beside them (docs/explanation/the-two-questions.md)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from bnsearch.config import DEFAULT_THRESHOLD, QUESTIONS
from bnsearch.stats._format import (
    MIN_BLOCKS_CI,
    MIN_IMPORTANCE_TRIALS,
    MIN_SEEDS_TO_RANK,
    RUNAWAY,
    counted,
    difference_text,
    significant,
    too_few,
)
from bnsearch.stats._sequential import (
    Outcome,
    Side,
    bn_outcomes,
    median_confidence_sequence,
    min_blocks_to_settle,
    settle,
    settle_against_none,
)
from bnsearch.trial import (
    DIVERGED_LOSS,
    Phase,
    TrialResult,
    TrialState,
    in_placement_order,
    is_divergence,
    lower_is_better,
    plain,
)

#: The questions each ``--question`` asks, by the name of their :class:`Answer`.
ASKED = {"both": ("bn", "placement"), "bn": ("bn",), "placement": ("placement",)}
#: Each question as the verdict's lines ask it.
QUESTION_TEXT = {"bn": "does BN help?", "placement": "before or after?"}


def quoted_questions(questions: Iterable[str]) -> str:
    """The questions named, quoted: ``“does BN help?” and “before or after?”``."""
    return " and ".join(f"“{QUESTION_TEXT[q]}”" for q in questions)


def interval_kind(until: str) -> str:
    """The interval that decides under the study's rule, by name."""
    return "anytime-valid 95% CS" if until == "settled" else "95% CI"


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
    blocks: tuple[int, ...] = field(repr=False, default=())  # the block of each difference

    @property
    def left_out(self) -> int:
        """Blocks whose difference is a run-away, left out of the mean and ``d_z`` only."""
        return sum(abs(d) >= RUNAWAY for d in self.differences)

    @property
    def mean_text(self) -> str:
        """``-0.1012 (2 blocks with a diverged trial left out)``; ``n/a`` with why."""
        if not math.isfinite(self.mean):  # every block a run-away, or none
            return "n/a (every block has a diverged trial)" if self.left_out else too_few(0)
        away = f" ({counted(self.left_out, 'block')} with a diverged trial left out)"
        return difference_text(self.mean) + away * bool(self.left_out)

    @property
    def median_text(self) -> str:
        """The median difference, signed; ``n/a`` with why where it is a run-away."""
        if math.isfinite(self.median) and abs(self.median) >= RUNAWAY:
            return "n/a (the median block has a diverged trial)"
        return difference_text(self.median)

    @property
    def effect_text(self) -> str:
        """``d_z``, or why there is none."""
        kept = self.n_blocks - self.left_out
        if math.isfinite(self.effect_size):
            return significant(self.effect_size, 3, signed=True)
        if kept < 2 and self.left_out:
            return f"n/a ({counted(kept, 'block')} without a diverged trial)"
        return too_few(kept) if kept < 2 else "n/a (the differences do not vary)"

    def interval(self, until: str) -> tuple[float, float]:
        return (self.cs_low, self.cs_high) if until == "settled" else (self.ci_low, self.ci_high)

    def interval_text(self, until: str) -> str:
        low, high = self.interval(until)
        if self.n_blocks < MIN_BLOCKS_CI or not (math.isfinite(low) and math.isfinite(high)):
            return too_few(self.n_blocks)
        return f"[{difference_text(low)}, {difference_text(high)}]"

    def p_text(self, holm: bool = False) -> str:
        p = self.p_holm if holm else self.p_value
        return too_few(self.n_blocks) if self.n_blocks < 2 or math.isnan(p) else f"{p:.3g}"

    def brief(self, until: str) -> str:
        """``before − none: median -0.2003, 95% CI [-0.2162, -0.1898]``."""
        bounds = f"{interval_kind(until)} {self.interval_text(until)}"
        return f"{self.first} − {self.second}: median {self.median_text}, {bounds}"

    def side(self, until: str, threshold: float) -> Side:
        """The study's rule on this pair; the fixed budget's: from 3 blocks, the bootstrap
        interval beyond the threshold and Holm p < 0.05, or the interval inside."""
        side = settle(*self.interval(until), threshold)
        if until == "settled" or side is Side.INSIDE:
            return side
        return side if self.n_blocks >= 3 and self.p_holm < 0.05 else Side.OPEN


@dataclass(frozen=True)
class Answer:
    """One question's answer (``question``: ``bn`` or ``placement``): an
    :class:`~bnsearch.stats.Outcome`, or the better placement's name. ``sides`` (BN only):
    each BN placement's :class:`~bnsearch.stats.Side` against ``none``, seen from BN."""

    question: str
    outcome: str
    statement: str
    extra_blocks_needed: int | None = None
    sides: dict[str, Side] = field(default_factory=dict)
    loser: str | None = None  # placement: the placement the winner beats

    @property
    def decided(self) -> bool:
        """Settled: a claim, no effect, or a BN question that cannot be asked."""
        return self.outcome not in (Outcome.INCONCLUSIVE, Outcome.INSUFFICIENT, Outcome.UNANSWERED)

    @property
    def helping(self) -> tuple[str, ...]:
        return tuple(p for p, side in self.sides.items() if side is Side.BELOW)

    @property
    def words(self) -> str:
        """The answer in a few words, for the headline."""
        if self.outcome not in _WORDS[self.question]:  # the placement question's claim
            return f"`{self.outcome}` is better than `{self.loser}`"
        return _WORDS[self.question][self.outcome][0].format(beat=_beat(self.helping))

    @property
    def short(self) -> str:
        """Fewer words still, for a run's name and the sweep's table."""
        if self.outcome not in _WORDS[self.question]:
            return f"{self.outcome} better"
        return _WORDS[self.question][self.outcome][1]


#: Each answer's words and short words, by question and outcome.
_WORDS: dict[str, dict[str, tuple[str, str]]] = {
    "bn": {
        Outcome.HELPS: ("BN helps ({beat})", "BN helps"),
        Outcome.NO_HELP: ("BN does not help (`none` is as good or better)", "BN does not help"),
        Outcome.NO_EFFECT: ("no effect of BN beyond the threshold", "BN: no effect"),
        Outcome.INCONCLUSIVE: ("does BN help: inconclusive", "BN inconclusive"),
        Outcome.INSUFFICIENT: ("does BN help: too few blocks", "BN: too few blocks"),
        Outcome.UNANSWERED: ("does BN help: not answered", "BN: not answered"),
        Outcome.NOT_COMPARED: ("BN not compared (no `none` placement)", "BN not compared"),
    },
    "placement": {
        Outcome.NO_EFFECT: ("no placement effect beyond the threshold", "placement: no effect"),
        Outcome.INCONCLUSIVE: ("before or after: inconclusive", "placement inconclusive"),
        Outcome.INSUFFICIENT: ("before or after: too few blocks", "placement: too few blocks"),
        Outcome.UNANSWERED: ("before or after: not answered", "placement: not answered"),
    },
}


def _beat(placements: Sequence[str]) -> str:
    names = " and ".join(f"`{p}`" for p in placements)
    return f"{names} {'beats' if len(placements) == 1 else 'beat'} `none`"


def _extra_blocks(pair: PairComparison, threshold: float) -> int:
    """Blocks that should shrink the bootstrap interval enough (half-width ~ 1/sqrt(n))."""
    n, half_width = pair.n_blocks, (pair.ci_high - pair.ci_low) / 2
    if n < MIN_BLOCKS_CI or math.isnan(half_width):  # no interval yet: first reach it
        return max(MIN_BLOCKS_CI - n, 1)
    target = max(abs(abs(pair.median) - threshold), threshold / 4)
    needed = math.ceil(n * (half_width / target) ** 2) - n if half_width > target else 1
    return max(needed, 1)


def _too_few(question: str, n: int, until: str) -> Answer:
    """The answer while no interval can decide ``question`` yet."""
    bn = question == "bn"
    said = f"not enough paired blocks{' with `none`' * bn} ({n}); run more trials (at least 3"
    said += " complete blocks)."
    if until == "settled":
        what = "no interval against `none` can" if bn else "the anytime-valid interval cannot"
        said = (
            f"not settled after {counted(n, 'block')}: {what} be bounded yet "
            f"({'each' if bn else 'it'} needs at least {min_blocks_to_settle()} complete "
            "blocks); run more trials."
        )
    return Answer(question, Outcome.INSUFFICIENT, said)


def answer_placement(
    pair: PairComparison | None, threshold: float, until: str, lower_is_better: bool
) -> Answer:
    """Before or after: the study's primary pair by the study's rule."""
    settled, n = until == "settled", pair.n_blocks if pair else 0
    if pair is None or not (math.isfinite(pair.cs_low + pair.cs_high) if settled else n >= 3):
        return _too_few("placement", n, until)
    side, first, second = pair.side(until, threshold), pair.first, pair.second
    how = f": settled after {counted(n, 'block')}, the interval lies wholly" if settled else ""
    interval = (
        f"(median difference {first} − {second} {pair.median_text}, {interval_kind(until)} "
        f"{pair.interval_text(until)}, mean {pair.mean_text}, {counted(n, 'block')})"
    )
    if side in (Side.BELOW, Side.ABOVE):
        first_wins = (side is Side.BELOW) == lower_is_better
        winner, loser = (first, second) if first_wins else (second, first)
        where = f"{how} beyond the threshold {threshold:g}" if settled else ""
        said = f"`{winner}` is better than `{loser}`{where} {interval}."
        return Answer("placement", winner, said, loser=loser)
    if side is Side.INSIDE:
        note = f"{how} inside ±{threshold:g}" if settled else ""
        if not settled and pair.p_holm < 0.05:
            note = " (detectable, but smaller than the threshold)"
        said = f"no placement effect larger than {threshold:g} between `{first}` and `{second}`"
        return Answer("placement", Outcome.NO_EFFECT, f"{said}{note} {interval}.")
    if settled:
        said = (
            f"inconclusive: not settled within {counted(n, 'block')}, the interval still reaches "
            f"across the threshold {threshold:g} {interval}; run the study again to add "
            "blocks (it resumes, and stops as soon as it settles)."
        )
        return Answer("placement", Outcome.INCONCLUSIVE, said)
    needed = _extra_blocks(pair, threshold)
    said = f"inconclusive {interval}; about {needed} more blocks should resolve it."
    return Answer("placement", Outcome.INCONCLUSIVE, said, needed)


# long because it is one sentence per outcome, each naming every BN placement's interval.
def answer_bn(
    comparisons: Sequence[PairComparison],
    threshold: float,
    until: str,
    lower_is_better: bool,
    left_out: dict[str, int] | None = None,
) -> Answer:
    """Does BN help: each BN placement against ``none`` (``comparisons``: ``p − none``).
    ``left_out``: the study's placements, each with its failed or pruned trials (empty: no
    blocks yet)."""
    if not left_out:
        return Answer("bn", Outcome.INSUFFICIENT, "no paired blocks yet; run more trials.")
    if not comparisons and "none" in left_out and len(left_out) > 1:
        counts = ", ".join(f"{p} {n}" for p, n in left_out.items())
        why = "`none` or every BN placement failed by an exception or was pruned"
        said = f"no block compares BN with `none`: in each, {why} (trials left out: {counts})."
        return Answer("bn", Outcome.INSUFFICIENT, said)
    if not comparisons:
        said = "the study compares no `none` placement with a BN placement (add none to"
        return Answer("bn", Outcome.NOT_COMPARED, f"not asked: {said} --placements).")
    settled, n = until == "settled", max(p.n_blocks for p in comparisons)
    own = [p.side(until, threshold) for p in comparisons]
    own = [s if lower_is_better else s.flipped for s in own]  # each placement's, seen from BN
    codes, bounded = np.array(own), np.array([p.n_blocks >= 3 for p in comparisons])
    if settled:  # a BN placement beats `none` only where the closed test names it too
        by_block = [dict(zip(p.blocks, p.differences, strict=True)) for p in comparisons]
        blocks = sorted(set().union(*by_block))
        matrix = np.array([[d.get(b, math.nan) for d in by_block] for b in blocks], float)
        codes = settle_against_none((1.0 if lower_is_better else -1.0) * matrix, threshold)[0]
        bounded = np.array([math.isfinite(p.cs_low + p.cs_high) for p in comparisons])
    outcome = Outcome(str(bn_outcomes(codes, bounded)))
    sides = {p.first: Side(int(c)) for p, c in zip(comparisons, codes, strict=True)}
    if outcome == Outcome.INSUFFICIENT:
        return replace(_too_few("bn", n, until), sides=sides)
    extra = None
    if outcome == Outcome.INCONCLUSIVE and not settled:
        extra = max(_extra_blocks(p, threshold) for p in comparisons if sides[p.first] is Side.OPEN)
    holm = [f", Holm p {p.p_text(holm=True)}" * (not settled) for p in comparisons]
    details = "; ".join(p.brief(until) + h for p, h in zip(comparisons, holm, strict=True))
    verbs = {Side.INSIDE: f"is within ±{threshold:g} of", Side.BELOW: "beats"}
    verbs[Side.ABOVE] = "is worse than"
    why = " (its own interval lies beyond the threshold, the closed test over the BN placements"
    parts = {
        p: f"`{p}` {verbs[side]} `none`"
        if side in verbs
        else f"`{p}` against `none`: not settled" + f"{why} not yet)" * (mine is Side.BELOW)
        for (p, side), mine in zip(sides.items(), own, strict=True)
    }
    each = "; ".join(parts.values())
    when = f", settled after {counted(n, 'block')}" if settled else ""
    end = f" ({details}, {counted(n, 'block')})."
    names = " and ".join(f"`{p}`" for p in sides)
    if outcome == Outcome.HELPS:
        helping = [p for p, side in sides.items() if side is Side.BELOW]
        rest = "".join(f"; {text}" for p, text in parts.items() if p not in helping)
        said = f"BN helps: {_beat(helping)}{when}{rest}{end}"
    elif outcome == Outcome.NO_HELP and all(side is Side.ABOVE for side in sides.values()):
        said = f"BN does not help: `none` is better than {names}{when}{end}"
    elif outcome == Outcome.NO_HELP:
        said = f"BN does not help: `none` is as good or better{when}: {each}{end}"
    elif outcome == Outcome.NO_EFFECT:
        lie = "each lie" if len(sides) > 1 else "lies"
        said = f"no effect of BN beyond the threshold {threshold:g}{when}: {names} {lie} within "
        said += f"±{threshold:g} of `none`{end}"
    elif settled:
        said = f"inconclusive: not settled within {counted(n, 'block')}: {each} ({details})."
    else:
        said = f"inconclusive: {each} ({details}); about {extra} more blocks should resolve it."
    return Answer("bn", outcome, said, extra, sides)


def metric_value(result: TrialResult, metric: str) -> float | None:
    """The final-epoch value of ``metric`` for a completed trial, else None."""
    value = result.final(metric) if result.state is TrialState.COMPLETE else None
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
    best: dict[str, tuple[float, TrialResult]] = {}  # each best's value, and itself
    for r in results:
        mine = best.get(r.config.placement)
        if r.spec.phase == Phase.SEARCH and r.value is not None and (not mine or r.value < mine[0]):
            best[r.config.placement] = (r.value, r)
    return [r for _, r in best.values()]


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (scipy offers Bonferroni-Holm only via statsmodels)."""
    m, running = len(p_values), 0.0
    adjusted = [1.0] * m
    for rank, index in enumerate(sorted(range(m), key=lambda i: p_values[i])):
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
        """Seeds enough for a standard deviation and a place in the ranking."""
        return len(self.kept) >= MIN_SEEDS_TO_RANK

    def left_out(self, more: str = " more") -> list[str]:
        """The seeds its mean leaves out, and why (``1 more diverged or failed``)."""
        parts = [f"{self.failed}{more} diverged or failed"] * bool(self.failed)
        return parts + [f"{self.ran_away}{more} ran away"] * bool(self.ran_away)

    @property
    def lost(self) -> str:
        """Why no fresh-seed run counts, where none does."""
        return "ran away, diverged or failed" if self.ran_away else "diverged or failed"

    @property
    def mean_sd(self) -> str:
        """``0.4701 ± 0.0042``; the mean alone where there is no sd."""
        sd = f" ± {significant(self.std, 2)}" if self.ranked else ""
        return significant(self.mean) + sd


#: Why the fresh-seed confirmation and the blocks may rank the placements differently.
_DIFFERENT = (
    ". They answer different questions: a block compares the placements at one configuration "
    "the search drew, so the verdict is about a typical configuration (the median block), "
    "while the confirmation re-trains each placement's own tuned best; a placement can lose at "
    "a typical configuration and still have the best tuned one (it may want, e.g., another "
    "learning rate), or the reverse. For the best model, take the confirmation's ranking; for "
    "what BN and its placement do to a given configuration, the blocks'."
)


@dataclass(frozen=True)
class Verdict:
    """bnsearch's statement about BN and its placement for one dataset: ``bn`` answers
    "does BN help here?", ``placement`` "before or after?"; ``statement`` carries both."""

    metric: str
    threshold: float
    primary: PairComparison | None
    pairs: tuple[PairComparison, ...]
    excluded_blocks: dict[str, int]
    placement: Answer
    bn: Answer
    confirmations: tuple[PlacementConfirmation, ...] = ()
    importances: dict[str, float] = field(default_factory=dict)
    diverged_blocks: dict[str, int] = field(default_factory=dict)  # each losing its block
    by_activation: dict[str, Verdict] = field(default_factory=dict)  # the activation searched
    until: str = "budget"  # the rule that decided
    question: str = "both"  # what a study run until settled waits for (QUESTIONS)
    unpaired: str | None = None  # why the trials are not paired blocks, when they are not
    no_ranking: str | None = None  # why the validation rows cannot rank the placements
    importance_note: str = ""  # why no importances are shown, when there are none

    @property
    def n_blocks(self) -> int:
        return self.primary.n_blocks if self.primary else 0

    @property
    def statement(self) -> str:
        """Both answers, the BN question first; at the cap, which one is still open."""
        if self.no_ranking is not None:
            return f"Neither question is answered: {self.no_ranking}"
        if self.unpaired is not None:
            return self.unpaired
        text = f"Does BN help? {self.bn.statement} Before or after? {self.placement.statement}"
        if self.bn.outcome == Outcome.NOT_COMPARED:
            text = self.placement.statement
        return f"{text} {self.still_open}".strip()

    @property
    def unanswered(self) -> str | None:
        """Why no paired comparison is shown; None when one is."""
        return self.unpaired if self.unpaired is not None else self.no_ranking

    @property
    def outcome(self) -> str:
        return self.placement.outcome

    @property
    def answers(self) -> tuple[Answer, Answer]:
        return self.bn, self.placement

    def question_of(self, pair: PairComparison) -> str | None:
        """The question ``pair`` answers: ``bn`` (a placement against ``none``), ``placement``
        (the primary pair), or None (a detail)."""
        return "bn" if pair.second == "none" else "placement" if pair is self.primary else None

    @property
    def open_questions(self) -> list[str]:
        """The questions asked that are not settled, here or within an activation."""
        asked = ASKED[self.question]
        open_ = {a.question for a in self.answers if a.question in asked and not a.decided}
        open_ = open_.union(*(sub.open_questions for sub in self.by_activation.values()))
        return [q for q in ASKED["both"] if q in open_]

    @property
    def settled(self) -> bool:
        """Whether a study run ``--until settled`` may stop."""
        return not self.open_questions

    @property
    def still_open(self) -> str:
        """Until settled, a question still open when the study stopped, and what to do."""
        if self.until != "settled" or self.settled or self.unanswered is not None:
            return ""
        if self.n_blocks < min_blocks_to_settle():
            return ""  # the answers themselves say that more blocks are needed
        open_, asked = self.open_questions, ASKED[self.question]
        waits = "both answers" if len(asked) > 1 else quoted_questions(asked)
        settled = [q for q in asked if q not in open_]
        other = f"; --question {settled[0]} stops on the settled one alone" if settled else ""
        return (
            f"Not settled within {counted(self.n_blocks, 'block')}: {quoted_questions(open_)} "
            f"{'is' if len(open_) == 1 else 'are'} still open (the study waits for {waits}, "
            f"--question {self.question}); run it again to add blocks{other}."
        )

    @property
    def words(self) -> str:
        """Both answers in a few words."""
        if self.no_ranking is not None:
            return "neither question is answered"
        return "; ".join(a.words for a in self.answers if a.outcome != Outcome.NOT_COMPARED)

    @property
    def reached(self) -> str:
        """How: ``8 blocks, fixed budget``, ``settled after 8 blocks``, ``not settled within``."""
        blocks = counted(self.n_blocks, "block")
        if self.until != "settled":
            return f"{blocks}, fixed budget"
        return f"settled after {blocks}" if self.settled else f"not settled within {blocks}"

    @property
    def headline(self) -> str:
        """Both answers in a few words and how they were reached."""
        if self.no_ranking is not None:
            return f"{self.words} ({counted(self.n_blocks, 'block')}): {self.no_ranking}"
        if self.until != "settled" or self.settled:
            return f"{self.words} ({self.reached})"
        return f"{self.words} ({self.reached}: {quoted_questions(self.open_questions)} still open)"

    @property
    def control(self) -> Answer | None:
        """The placement winner against ``input`` (BN on the raw inputs only: input scaling),
        when both are there: its own outcome where the advantage survives."""
        winner = self.placement.outcome
        pair = next((p for p in self.pairs if {p.first, p.second} == {winner, "input"}), None)
        if pair is None or winner == "input" or self.unpaired is not None:
            return None
        return answer_placement(pair, self.threshold, self.until, lower_is_better(self.metric))

    @property
    def input_control(self) -> str:
        """:attr:`control` in a sentence; else ``""``."""
        control, winner = self.control, self.placement.outcome
        if control is None:
            return ""
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
        runs = {c.placement: c for c in self.confirmations if c.ranked}
        if len(runs) < 2 or self.no_ranking is not None:
            return []
        sign = 1.0 if lower_is_better(self.metric) else -1.0
        first, *rest = sorted(runs, key=lambda p: sign * runs[p].mean)

        def ahead(a: str, b: str) -> bool:  # a's tuned best beats b's by more than the threshold
            return sign * (runs[b].mean - runs[a].mean) > self.threshold

        def seen(a: str, b: str) -> str:  # "`none` 0.1112 ± 0.0021 against `after` 0.1349 ± ..."
            spread = math.sqrt(sum(runs[p].std ** 2 / len(runs[p].kept) for p in (a, b)))
            noisy = abs(runs[a].mean - runs[b].mean) < 2 * spread
            text = " against ".join(f"`{p}` {runs[p].mean_sd}" for p in (a, b))
            return text + ", within twice the seeds' standard error" * noisy

        # What the blocks settled, as (better, worse) pairs of placements.
        claims = [(self.placement.outcome, self.placement.loser)] if self.placement.loser else []
        claims += [
            (p, "none") if side is Side.BELOW else ("none", p)
            for p, side in self.bn.sides.items()
            if side in (Side.BELOW, Side.ABOVE)
        ]
        said = [
            f"the blocks say `{better}` beats `{worse}`, the fresh-seed confirmation ranks "
            f"`{worse}` ahead ({seen(worse, better)})"
            for better, worse in claims
            if better in runs and worse in runs and ahead(worse, better)
        ]
        head = "fresh seeds and blocks disagree: "
        unsettled = ", ".join(f"`{p}`" for p in rest if (first, p) not in claims)
        if not said and ahead(first, rest[0]) and unsettled:
            head = "fresh seeds go further: "
            said = [
                f"the fresh-seed confirmation ranks `{first}` first ({seen(first, rest[0])}), "
                f"which the blocks do not settle (`{first}` against {unsettled})"
            ]
        return [head + "; ".join(said) + _DIFFERENT] if said else []

    @property
    def seeds_note(self) -> str:
        """``1 seed: no ranking`` when no confirmed best can be ranked; else ``""``."""
        if not self.confirmations or any(c.ranked for c in self.confirmations):
            return ""
        seeds = max(len(c.values) + c.failed for c in self.confirmations)
        return f"{counted(seeds, 'seed')}: no ranking"

    def summary_lines(self) -> list[str]:
        """Every statistic of the verdict, a line each (``--verbose``)."""
        lines = [f"Verdict ({self.metric}, threshold {self.threshold:g}): {self.headline}"]
        if self.no_ranking is not None:  # nothing ranked: no comparison, no confirmation
            return lines + self._importance_lines()
        lines += [f"  {QUESTION_TEXT[a.question]} {a.statement}" for a in self.answers]
        if self.unpaired is not None:
            lines = [f"Verdict ({self.metric}, threshold {self.threshold:g}): {self.unpaired}"]
        lines += [f"  {text}" for text in (self.still_open, self.input_control) if text]
        for pair in self.pairs:
            lines.append(
                f"  {pair.first} − {pair.second}: median {pair.median_text} "
                f"[95% CI {pair.interval_text('budget').strip('[]')}], mean {pair.mean_text}, "
                f"d_z {pair.effect_text}, Wilcoxon p {pair.p_text()} "
                f"(Holm {pair.p_text(holm=True)}), anytime-valid CS "
                f"{pair.interval_text('settled')}, {counted(pair.n_blocks, 'block')}"
            )
        for c in self.confirmations:  # 0.4701 ± 0.0042 (sd over 3 fresh seeds; 1 more ran away)
            seeds = counted(len(c.kept), "fresh seed")
            how = "; ".join([f"sd over {seeds}" if c.ranked else f"{seeds}: no sd", *c.left_out()])
            shown = f"{self.metric} {c.mean_sd} ({how})" if c.kept else ""
            lines.append(
                f"  best {c.placement}: {shown or f'no fresh-seed run completed (each {c.lost})'}"
            )
        lines += [f"  fresh seeds: {self.seeds_note}"] * bool(self.seeds_note)
        lines += [f"  {text}" for text in self.disagreements] + self._importance_lines()
        lines += [f"  with {act}: {sub.headline}" for act, sub in self.by_activation.items()]
        return lines

    def _importance_lines(self) -> list[str]:
        if self.importances:
            ranked = sorted(self.importances.items(), key=lambda kv: -kv[1])
            return ["  importance: " + ", ".join(f"{name} {v:.2f}" for name, v in ranked)]
        if self.importance_note:
            return [f"  hyperparameter importance left out: {self.importance_note}"]
        return []


def paired_blocks(results: Sequence[TrialResult]) -> dict[int, list[TrialResult]]:
    """The search trials of each paired block, by block."""
    blocks: dict[int, list[TrialResult]] = {}
    for result in results:
        block = result.spec.block
        if result.spec.phase == Phase.SEARCH and block is not None and block >= 0:
            blocks.setdefault(block, []).append(result)
    return dict(sorted(blocks.items()))


def _compare(
    diffs: np.ndarray, seed: int, tests: bool = True, pair: tuple[str, str] = ("first", "second")
) -> PairComparison:
    """One pair's statistics (``p_holm``: ``p_value``); the mean and ``d_z`` leave run-aways
    out; what needs more blocks, or tests not asked for, is NaN."""
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
    sd = float(np.std(kept, ddof=1)) if len(kept) > 1 else math.nan
    effect = mean / sd if sd > 0 else math.nan  # NaN > 0 is False
    return PairComparison(
        *pair, n, mean, median, low, high, p_value, p_value, effect,
        *median_confidence_sequence(diffs), differences=tuple(diffs.tolist()),
    )  # fmt: skip


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
    no_ranking: str | None = None,
) -> Verdict:
    """A study's TrialResults as a Verdict; ``until``: the study's rule, ``question`` what it
    waits for. ``decide_only``: until settled, no bootstrap or Wilcoxon (NaN; they do not
    decide). ``no_ranking``: why the validation rows cannot rank the placements, so that
    neither question is answered."""
    if question not in QUESTIONS:
        raise ValueError(f"question {question!r}: choose one of {', '.join(QUESTIONS)}")
    blocks = paired_blocks(results)
    placements = in_placement_order(r.config.placement for rs in blocks.values() for r in rs)
    values = {b: {r.config.placement: block_value(r, metric) for r in m} for b, m in blocks.items()}
    ran_away = {b: {r.config.placement for r in m if diverged(r)} for b, m in blocks.items()}
    excluded = {p: sum(v.get(p, 0) is None for v in values.values()) for p in placements}
    lost = {p: sum(p in away for away in ran_away.values()) for p in placements}
    tests = not (decide_only and until == "settled")
    compared = []
    for first, second in itertools.combinations(placements, 2):
        if first == "none":  # always second: ``p − none`` reads "what BN does"
            first, second = second, first
        diffs, where = [], []
        for block, by_placement in values.items():
            a, b = by_placement.get(first), by_placement.get(second)
            both_diverged = {first, second} <= ran_away[block]  # says nothing of either
            if a is not None and b is not None and not both_diverged:
                diffs.append(a - b)
                where.append(block)
        if diffs:
            pair = _compare(np.asarray(diffs, float), seed, tests, (first, second))
            compared.append(replace(pair, blocks=tuple(where)))
    p_values = [pair.p_value for pair in compared]
    adjusted = holm(p_values) if tests else p_values  # NaN: no test
    pairs = tuple(replace(pair, p_holm=p) for pair, p in zip(compared, adjusted, strict=True))
    primary = next((p for p in pairs if {p.first, p.second} == {"before", "after"}), None)
    primary = primary or (pairs[0] if pairs else None)
    lower, against = lower_is_better(metric), [p for p in pairs if p.second == "none"]
    activations = sorted({r.config.activation for r in results if r.config.activation})
    same: dict[str, Any] = dict(metric=metric, threshold=threshold, until=until, question=question)
    again = dict(same, seed=seed, decide_only=decide_only, no_ranking=no_ranking)
    by_activation = {  # does the answer depend on the activation?
        act: analyze(
            [r for r in results if r.config.activation == act],
            confirmation_phase=[r for r in confirmation_phase if r.config.activation == act],
            **again,
        )
        for act in (activations if len(activations) > 1 else ())
    }
    complete = sum(r.state is TrialState.COMPLETE for r in results if r.spec.phase == Phase.SEARCH)
    need = MIN_IMPORTANCE_TRIALS  # over fewer trials, importances rank noise
    note = f"{counted(complete, 'completed search trial')}; it needs at least {need}"
    answers = [
        answer_bn(against, threshold, until, lower, excluded),
        answer_placement(primary, threshold, until, lower),
    ]
    if no_ranking is not None:
        no_ranking = no_ranking.strip().rstrip(".") + "."
        answers = [
            a if a.outcome == Outcome.NOT_COMPARED
            else Answer(a.question, Outcome.UNANSWERED, f"not answered: {no_ranking}")
            for a in answers
        ]  # fmt: skip
    return Verdict(
        primary=primary,
        pairs=pairs,
        excluded_blocks=excluded,
        diverged_blocks=lost,
        bn=answers[0],
        placement=answers[1],
        no_ranking=no_ranking,
        confirmations=_confirmations(confirmation_phase, metric),
        importances={} if complete < need else dict(importances or {}),
        importance_note=note if complete < need else "",
        by_activation=by_activation,
        **same,
    )


def fixed_budget_side(differences: Sequence[float], threshold: float, seed: int = 0) -> Side:
    """The fixed-budget rule on one pair's differences (a loss): for comparing the two rules
    on simulated studies."""
    return _compare(np.asarray(differences, float), seed).side("budget", threshold)


def _confirmations(
    results: Sequence[TrialResult], metric: str
) -> tuple[PlacementConfirmation, ...]:
    out = []
    for placement in in_placement_order(r.config.placement for r in results):
        members = [r for r in results if r.config.placement == placement]
        values = tuple(v for r in members if (v := metric_value(r, metric)) is not None)
        params = {k: plain(v) for k, v in members[0].config.as_params().items()}
        failed = sum(r.state is TrialState.FAILED for r in members)
        out.append(PlacementConfirmation(placement, params, values, failed))
    return tuple(out)


def verdict_for(
    results: Sequence[TrialResult],
    unpaired_reason: str | None = None,
    no_ranking_reason: str | None = None,
    **options: Any,
) -> Verdict:
    """:func:`analyze` (``options``) over a study's search trials and its latest confirmation
    round; ``unpaired_reason`` (the trials are not paired blocks) or ``no_ranking_reason`` (the
    validation rows cannot rank the placements) says why none is given."""
    confirm = [r for r in results if r.spec.phase == Phase.CONFIRM]
    latest = max((r.spec.block or 0 for r in confirm), default=None)
    confirm = [r for r in confirm if r.spec.block == latest]  # the latest round
    search = [r for r in results if r.spec.phase == Phase.SEARCH]
    verdict = analyze(search, confirmation_phase=confirm, no_ranking=no_ranking_reason, **options)
    return replace(verdict, unpaired=unpaired_reason)
