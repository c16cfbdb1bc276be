"""The two questions, "does BN help here?" (each BN placement against ``none``) and "before
or after?", each answered from the paired blocks by the study's rule (see
docs/explanation/the-two-questions.md)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from bnsearch.stats._format import (
    MIN_BLOCKS_CI,
    RUNAWAY,
    counted,
    difference_text,
    significant,
    too_few,
)
from bnsearch.stats._sequential import (
    ALPHA,
    Outcome,
    Side,
    bn_outcomes,
    min_blocks_to_settle,
    settle,
    settle_against_none,
)

#: The questions each ``--question`` asks, by the name of their :class:`Answer`.
ASKED: dict[str, tuple[str, ...]] = {
    "both": ("bn", "placement"),
    "bn": ("bn",),
    "placement": ("placement",),
}
#: Each question as the verdict's lines ask it.
QUESTION_TEXT = {"bn": "does BN help?", "placement": "before or after?"}


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
        """Blocks whose difference is a run-away (:data:`~bnsearch.stats.RUNAWAY` or more),
        left out of the mean and ``d_z`` only."""
        return sum(abs(d) >= RUNAWAY for d in self.differences)

    @property
    def mean_text(self) -> str:
        """``-0.1012 (2 blocks with a diverged trial left out)``; ``n/a`` with why."""
        if not math.isfinite(self.mean) or abs(self.mean) >= RUNAWAY:
            return "n/a (every block has a diverged trial)" if self.left_out else too_few(0)
        if self.left_out:
            blocks = counted(self.left_out, "block")
            return f"{difference_text(self.mean)} ({blocks} with a diverged trial left out)"
        return difference_text(self.mean)

    @property
    def median_text(self) -> str:
        """The median difference, signed; ``n/a`` with why where it is a run-away."""
        if math.isfinite(self.median) and abs(self.median) >= RUNAWAY:
            return "n/a (the median block has a diverged trial)"
        return difference_text(self.median)

    @property
    def effect_text(self) -> str:
        """``d_z``, or why there is none."""
        if math.isfinite(self.effect_size):
            return significant(self.effect_size, 3, signed=True)
        kept = self.n_blocks - self.left_out
        if kept < 2 and self.left_out:
            return f"n/a ({counted(kept, 'block')} without a diverged trial)"
        if kept < 2:
            return too_few(kept)
        return "n/a (the differences do not vary)"

    @property
    def ci_text(self) -> str:
        """The bootstrap interval of the median, ``[low, high]``; ``n/a (2 blocks)``."""
        if self.n_blocks < MIN_BLOCKS_CI or math.isnan(self.ci_low) or math.isnan(self.ci_high):
            return too_few(self.n_blocks)
        return f"[{difference_text(self.ci_low)}, {difference_text(self.ci_high)}]"

    @property
    def cs_text(self) -> str:
        """The anytime-valid sequence, ``[low, high]``; ``n/a (5 blocks)`` while unbounded."""
        if not (math.isfinite(self.cs_low) and math.isfinite(self.cs_high)):
            return too_few(self.n_blocks)
        return f"[{difference_text(self.cs_low)}, {difference_text(self.cs_high)}]"

    def interval_text(self, until: str) -> str:
        return self.cs_text if until == "settled" else self.ci_text

    @property
    def p_text(self) -> str:
        return _p_text(self.p_value, self.n_blocks)

    @property
    def p_holm_text(self) -> str:
        return _p_text(self.p_holm, self.n_blocks)

    def interval(self, until: str) -> tuple[float, float]:
        return (self.cs_low, self.cs_high) if until == "settled" else (self.ci_low, self.ci_high)

    def describe(self, until: str, mean: bool = True) -> str:
        """``median difference before − after -0.1494, anytime-valid 95% CS [...], ...``."""
        text = (
            f"median difference {self.first} − {self.second} {self.median_text}, {_kind(until)} "
            f"{self.interval_text(until)}"
        )
        if mean:
            text += f", mean {self.mean_text}"
        return f"{text}, {counted(self.n_blocks, 'block')}"


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
        if self.outcome not in _WORDS[self.question]:
            claim = f"`{self.outcome}` is better than `{self.loser}`"
            return "BN not compared (no `none` placement)" if self.question == "bn" else claim
        return _WORDS[self.question][self.outcome][0].format(beat=_beat(self.helping))

    @property
    def short(self) -> str:
        """Fewer words still, for a run's name."""
        if self.outcome not in _WORDS[self.question]:
            return "" if self.question == "bn" else f"{self.outcome} better"
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
    },
    "placement": {
        Outcome.NO_EFFECT: ("no placement effect beyond the threshold", "placement: no effect"),
        Outcome.INCONCLUSIVE: ("before or after: inconclusive", "placement inconclusive"),
        Outcome.INSUFFICIENT: ("before or after: too few blocks", "placement: too few blocks"),
        Outcome.UNANSWERED: ("before or after: not answered", "placement: not answered"),
    },
}


def _kind(until: str) -> str:
    return "anytime-valid 95% CS" if until == "settled" else "95% CI"


def _p_text(p_value: float, n_blocks: int) -> str:
    return too_few(n_blocks) if n_blocks < 2 or math.isnan(p_value) else f"{p_value:.3g}"


def quoted_questions(questions: Iterable[str]) -> str:
    """The questions named, quoted: ``“does BN help?” and “before or after?”``."""
    return " and ".join(f"“{QUESTION_TEXT[q]}”" for q in questions)


def _beat(placements: Sequence[str]) -> str:
    names = " and ".join(f"`{p}`" for p in placements)
    return f"{names} {'beats' if len(placements) == 1 else 'beat'} `none`"


def budget_side(pair: PairComparison, threshold: float) -> Side:
    """The fixed-budget rule on one pair: the bootstrap interval beyond the threshold and
    Holm p < 0.05, or the interval inside."""
    side = settle(pair.ci_low, pair.ci_high, threshold)
    beyond = side in (Side.BELOW, Side.ABOVE)
    return Side.OPEN if beyond and not pair.p_holm < 0.05 else side


def _extra_blocks(pair: PairComparison, threshold: float) -> int:
    """Blocks that should shrink the bootstrap interval enough (half-width ~ 1/sqrt(n))."""
    n, half_width = pair.n_blocks, (pair.ci_high - pair.ci_low) / 2
    if n < MIN_BLOCKS_CI or math.isnan(half_width):  # no interval yet: first reach it
        return max(MIN_BLOCKS_CI - n, 1)
    target = max(abs(abs(pair.median) - threshold), threshold / 4)
    needed = math.ceil(n * (half_width / target) ** 2) - n if half_width > target else 1
    return max(needed, 1)


def _better_of(pair: PairComparison, side: Side, lower_is_better: bool) -> tuple[str, str]:
    first_better = (side is Side.BELOW) == lower_is_better
    return (pair.first, pair.second) if first_better else (pair.second, pair.first)


def _too_few(n: int, until: str) -> str:
    if until == "settled":
        return (
            f"not settled after {counted(n, 'block')}: the anytime-valid interval cannot be "
            f"bounded yet (it needs at least {min_blocks_to_settle(ALPHA)} complete blocks); run "
            "more trials."
        )
    return f"not enough paired blocks ({n}); run more trials (at least 3 complete blocks)."


def answer_placement(
    pair: PairComparison | None, threshold: float, until: str, lower_is_better: bool
) -> Answer:
    """Before or after: the study's primary pair by the study's rule."""
    n, settled = (pair.n_blocks if pair else 0), until == "settled"
    unbounded = pair is None or math.isinf(pair.cs_low) or math.isinf(pair.cs_high)
    if pair is None or (unbounded if settled else n < 3):
        return Answer("placement", Outcome.INSUFFICIENT, _too_few(n, until))
    side = settle(pair.cs_low, pair.cs_high, threshold) if settled else budget_side(pair, threshold)
    how = f": settled after {counted(n, 'block')}, the interval lies wholly" if settled else ""
    interval = f"({pair.describe(until)})"
    if side in (Side.BELOW, Side.ABOVE):
        winner, loser = _better_of(pair, side, lower_is_better)
        where = f"{how} beyond the threshold {threshold:g}" if settled else ""
        statement = f"`{winner}` is better than `{loser}`{where} {interval}."
        return Answer("placement", winner, statement, loser=loser)
    if side is Side.INSIDE:
        note = f"{how} inside ±{threshold:g}" if settled else ""
        if not settled and pair.p_holm < 0.05:
            note = " (detectable, but smaller than the threshold)"
        statement = (
            f"no placement effect larger than {threshold:g} between `{pair.first}` and "
            f"`{pair.second}`{note} {interval}."
        )
        return Answer("placement", Outcome.NO_EFFECT, statement)
    if settled:
        statement = (
            f"inconclusive: not settled within {counted(n, 'block')}, the interval still reaches "
            f"across the threshold {threshold:g} {interval}; run the study again to add blocks "
            "(it resumes, and stops as soon as it settles)."
        )
        return Answer("placement", Outcome.INCONCLUSIVE, statement)
    needed = _extra_blocks(pair, threshold)
    statement = f"inconclusive {interval}; about {needed} more blocks should resolve it."
    return Answer("placement", Outcome.INCONCLUSIVE, statement, extra_blocks_needed=needed)


def answer_bn(
    comparisons: Sequence[PairComparison],
    matrix: np.ndarray,
    threshold: float,
    until: str,
    lower_is_better: bool,
    left_out: dict[str, int] | None = None,
) -> Answer:
    """Does BN help: each BN placement against ``none`` (``comparisons``: ``p − none``;
    ``matrix``: their differences per block, NaN where missing). ``left_out``: the study's
    placements, each with its failed or pruned trials (empty: no blocks yet)."""
    if not left_out:
        return Answer("bn", Outcome.INSUFFICIENT, "no paired blocks yet; run more trials.")
    if not comparisons and "none" in left_out and len(left_out) > 1:
        counts = ", ".join(f"{p} {n}" for p, n in left_out.items())
        return Answer(
            "bn",
            Outcome.INSUFFICIENT,
            "no block compares BN with `none`: in each, `none` or every BN placement failed by "
            f"an exception or was pruned (trials left out: {counts}).",
        )
    if not comparisons:
        return Answer(
            "bn",
            Outcome.NOT_COMPARED,
            "not asked: the study compares no `none` placement with a BN placement (add none "
            "to --placements).",
        )
    sign = 1.0 if lower_is_better else -1.0  # below favours BN
    if until == "settled":
        codes, low, high = settle_against_none(sign * matrix, threshold)
        unnamed = [
            p.first
            for p, c, lo, hi in zip(comparisons, codes, low, high, strict=True)
            if c != Side.BELOW and settle(lo, hi, threshold) is Side.BELOW
        ]
        bounded = np.isfinite(low) & np.isfinite(high)
    else:
        bounded = np.array([p.n_blocks >= 3 for p in comparisons])
        own = [budget_side(p, threshold) if p.n_blocks >= 3 else Side.OPEN for p in comparisons]
        codes = np.array([s if lower_is_better else s.flipped for s in own])  # seen from BN
        unnamed = []
    outcome = Outcome(str(bn_outcomes(codes, bounded)))
    sides = {p.first: Side(int(c)) for p, c in zip(comparisons, codes, strict=True)}
    extra = None
    if outcome == Outcome.INCONCLUSIVE and until != "settled":
        extra = max(_extra_blocks(p, threshold) for p in comparisons if sides[p.first] is Side.OPEN)
    statement = _bn_statement(outcome, comparisons, sides, unnamed, threshold, until, extra)
    return Answer("bn", outcome, statement, extra, sides)


# long because it is one sentence per outcome, each naming every BN placement's interval.
def _bn_statement(
    outcome: str,
    comparisons: Sequence[PairComparison],
    sides: dict[str, Side],
    unnamed: Sequence[str],
    threshold: float,
    until: str,
    extra: int | None,
) -> str:
    def each(pair: PairComparison) -> str:
        holm = f", Holm p {pair.p_holm_text}" if until != "settled" else ""
        bounds = pair.interval_text(until)
        return f"{pair.first} − none: median {pair.median_text}, {_kind(until)} {bounds}{holm}"

    def verdict_of(pair: PairComparison) -> str:
        said = {
            Side.INSIDE: f"is within ±{threshold:g} of",
            Side.BELOW: "beats",
            Side.ABOVE: "is worse than",
        }
        if sides[pair.first] in said:
            return f"`{pair.first}` {said[sides[pair.first]]} `none`"
        why = (
            " (its own interval lies beyond the threshold, the closed test over the BN "
            "placements not yet)"
        )
        return f"`{pair.first}` against `none`: not settled{why * (pair.first in unnamed)}"

    n = max(p.n_blocks for p in comparisons)
    details = "; ".join(each(p) for p in comparisons)
    when = f", settled after {counted(n, 'block')}" if until == "settled" else ""
    end = f" ({details}, {counted(n, 'block')})."
    names = " and ".join(f"`{p.first}`" for p in comparisons)
    parts = "; ".join(verdict_of(p) for p in comparisons)
    if outcome == Outcome.HELPS:
        helping = [p.first for p in comparisons if sides[p.first] is Side.BELOW]
        rest = "".join(f"; {verdict_of(p)}" for p in comparisons if p.first not in helping)
        return f"BN helps: {_beat(helping)}{when}{rest}{end}"
    if outcome == Outcome.NO_HELP and all(sides[p.first] is Side.ABOVE for p in comparisons):
        return f"BN does not help: `none` is better than {names}{when}{end}"
    if outcome == Outcome.NO_HELP:
        return f"BN does not help: `none` is as good or better{when}: {parts}{end}"
    if outcome == Outcome.NO_EFFECT:
        each_ = "each lie" if len(comparisons) > 1 else "lies"
        return (
            f"no effect of BN beyond the threshold {threshold:g}{when}: {names} {each_} "
            f"within ±{threshold:g} of `none`{end}"
        )
    if outcome == Outcome.INSUFFICIENT:
        if until == "settled":
            return (
                f"not settled after {counted(n, 'block')}: no interval against `none` can be "
                f"bounded yet (each needs at least {min_blocks_to_settle(ALPHA)} complete blocks)."
            )
        return f"not enough paired blocks with `none` ({n}); at least 3 complete blocks."
    if until == "settled":
        return f"inconclusive: not settled within {counted(n, 'block')}: {parts} ({details})."
    return f"inconclusive: {parts} ({details}); about {extra} more blocks should resolve it."
