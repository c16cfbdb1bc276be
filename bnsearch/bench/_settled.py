"""``python -m bnsearch bench --settled``: the real stopping rules, on a real study's
schedule of looks, against simulated studies of known truth (nothing is trained)."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from bnsearch.backends import batch_room
from bnsearch.config import DEFAULT_THRESHOLD, StudyConfig
from bnsearch.stats import (
    Outcome,
    Side,
    bn_outcomes,
    confidence_bounds,
    fixed_budget_side,
    settle_against_none,
    settle_codes,
)

NOISE = 0.01  # spread of the per-block differences: about the default study's
DIVERGED = 1e6  # a diverged trial's difference: huge and finite, of either sign


def _noise(rng: np.random.Generator, shape: str, scale: float, size: tuple[int, ...]) -> np.ndarray:
    if shape == "heavy-tailed":
        return scale * rng.standard_t(2, size)
    return scale * rng.standard_normal(size)


@dataclass(frozen=True)
class Scenario:
    """Per-block differences ``median + noise`` of one shape."""

    shape: str  # "normal" | "heavy-tailed" | "diverged outliers"
    median: float

    def draw(self, rng: np.random.Generator, studies: int, blocks: int) -> np.ndarray:
        size = (studies, blocks)
        noise = _noise(rng, self.shape, NOISE, size)
        if self.shape == "diverged outliers":  # 5 % of blocks, either placement diverged
            diverged = rng.random(size) < 0.05
            noise = np.where(diverged, DIVERGED * rng.choice([-1.0, 1.0], size), noise)
        return self.median + noise

    @property
    def truth(self) -> str:
        return "no effect" if abs(self.median) <= DEFAULT_THRESHOLD else "matters"


SCENARIOS = tuple(
    Scenario(shape, factor * DEFAULT_THRESHOLD)
    for shape in ("normal", "heavy-tailed", "diverged outliers")
    for factor in (0.0, 0.5, 1.0, 2.0, 5.0)
)


def look_schedule(cap_blocks: int = 86) -> list[int]:
    """The numbers of blocks (of the three default placements) at which a default study run
    until settled looks."""
    config = StudyConfig(until="settled", verbose=False)
    looks, have = [], 0
    while have < cap_blocks:
        room = batch_room(config, config.population, have * 3) // 3
        have = min(cap_blocks, have + max(room, 1))
        looks.append(have)
    return looks


@dataclass(frozen=True)
class Outcomes:
    """How often a rule said each thing over the simulated studies, and when it stopped."""

    matters: float
    no_effect: float
    inconclusive: float
    mean_blocks: float
    studies: int


def simulate_settled(
    scenario: Scenario, studies: int = 2000, seed: int = 0, cap_blocks: int = 86
) -> Outcomes:
    """The until-settled rule over ``studies`` simulated studies of ``scenario``."""
    diffs = scenario.draw(np.random.default_rng(seed), studies, cap_blocks)
    said = np.full(studies, Side.OPEN.value)
    stopped = np.full(studies, cap_blocks)
    running = np.ones(studies, bool)
    for n in look_schedule(cap_blocks):  # each study stops at its first settled look
        side = settle_codes(*confidence_bounds(diffs[:, :n]), DEFAULT_THRESHOLD)
        now = running & (side != Side.OPEN.value)
        said[now], stopped[now] = side[now], n
        running &= ~now
    return _outcomes([Side(code) for code in said], list(stopped))


def simulate_fixed(
    scenario: Scenario, studies: int = 300, seed: int = 0, blocks: int = 86
) -> Outcomes:
    """The fixed-budget rule (the verdict's bootstrap interval and Wilcoxon test)."""
    diffs = scenario.draw(np.random.default_rng(seed), studies, blocks)
    said = [fixed_budget_side(row, DEFAULT_THRESHOLD, seed=i) for i, row in enumerate(diffs)]
    return _outcomes(said, [blocks] * studies)


def _outcomes(said: list[Side], stopped: list[int]) -> Outcomes:
    n = len(said)
    return Outcomes(
        matters=sum(s in (Side.BELOW, Side.ABOVE) for s in said) / n,
        no_effect=sum(s is Side.INSIDE for s in said) / n,
        inconclusive=sum(s is Side.OPEN for s in said) / n,
        mean_blocks=float(np.mean(stopped)),
        studies=n,
    )


@dataclass(frozen=True)
class TwoQuestionScenario:
    """Blocks of ``none``, ``before`` and ``after`` whose true medians of ``before − none``
    and ``after − none`` are ``before`` and ``after`` (in the metric's units)."""

    shape: str  # as Scenario
    before: float
    after: float

    def draw(self, rng: np.random.Generator, studies: int, blocks: int) -> np.ndarray:
        """``(studies, blocks, 3)`` final losses of ``none``, ``before``, ``after``."""
        size = (studies, blocks, 3)
        noise = _noise(rng, self.shape, NOISE / np.sqrt(2), size)
        if self.shape == "diverged outliers":  # 5 % of blocks: one member diverged
            diverged = rng.random(size[:2]) < 0.05
            member = rng.integers(0, 3, size[:2])
            hit = diverged[..., None] & (np.arange(3) == member[..., None])
            noise = np.where(hit, DIVERGED, noise)
        return np.array([0.0, self.before, self.after]) + noise

    @property
    def bn_truth(self) -> str:
        return "helps" if min(self.before, self.after) < -DEFAULT_THRESHOLD - 1e-12 else "no help"

    @property
    def placement_truth(self) -> str:
        return (
            "matters" if abs(self.before - self.after) > DEFAULT_THRESHOLD + 1e-12 else "no effect"
        )


TWO_QUESTION_SCENARIOS = tuple(
    TwoQuestionScenario(shape, before * DEFAULT_THRESHOLD, after * DEFAULT_THRESHOLD)
    for shape in ("normal", "heavy-tailed", "diverged outliers")
    for before, after in (
        (0.0, 0.0),  # nothing matters
        (-1.0, -1.0),  # both BN placements on the threshold: the multiplicity's worst case
        (-1.0, 0.0),  # `before` on the threshold, and so is before − after
        (2.0, 2.0),  # BN hurts, both placements alike
        (0.0, 5.0),  # BN does not help (`before` ties `none`), placement matters
        (-2.0, -2.0),  # BN helps, placement does not matter
        (-5.0, 0.0),  # BN (before) helps, placement matters
    )
)


@dataclass(frozen=True)
class TwoQuestionOutcomes:
    """How often the two-question rule said each thing, and when it stopped."""

    bn_helps: float
    bn_no_help: float  # "does not help" or "no effect of BN"
    bn_open: float
    placement_matters: float
    placement_no_effect: float
    placement_open: float
    mean_blocks: float


_DECIDED = (Outcome.HELPS, Outcome.NO_HELP, Outcome.NO_EFFECT, Outcome.NOT_COMPARED)


def simulate_two_questions(
    scenario: TwoQuestionScenario,
    studies: int = 2000,
    seed: int = 0,
    cap_blocks: int = 86,
    question: str = "both",
) -> TwoQuestionOutcomes:
    """The until-settled rule with both questions over ``studies`` simulated studies: each
    stops at the first look where the questions it asks are settled, or at the cap."""
    values = scenario.draw(np.random.default_rng(seed), studies, cap_blocks)
    bn = np.full(studies, Outcome.INCONCLUSIVE, dtype=object)
    placement = np.full(studies, Side.OPEN.value)
    stopped = np.full(studies, cap_blocks)
    running = np.ones(studies, bool)
    for n in look_schedule(cap_blocks):
        codes, low, high = settle_against_none(
            values[:, :n, 1:] - values[:, :n, :1], DEFAULT_THRESHOLD
        )
        answer = bn_outcomes(codes, np.isfinite(low) & np.isfinite(high))
        side = settle_codes(
            *confidence_bounds(values[:, :n, 1] - values[:, :n, 2]), DEFAULT_THRESHOLD
        )
        done = {"bn": np.isin(answer, _DECIDED), "placement": side != Side.OPEN}
        stop = done["bn"] & done["placement"] if question == "both" else done[question]
        now = running & (stop | (n == cap_blocks))
        bn[now], placement[now], stopped[now] = answer[now], side[now], n
        running &= ~now
    return TwoQuestionOutcomes(
        bn_helps=float(np.mean(bn == Outcome.HELPS)),
        bn_no_help=float(np.mean(np.isin(bn, (Outcome.NO_HELP, Outcome.NO_EFFECT)))),
        bn_open=float(np.mean(np.isin(bn, (Outcome.INCONCLUSIVE, Outcome.INSUFFICIENT)))),
        placement_matters=float(np.mean(np.isin(placement, (Side.BELOW, Side.ABOVE)))),
        placement_no_effect=float(np.mean(placement == Side.INSIDE)),
        placement_open=float(np.mean(placement == Side.OPEN)),
        mean_blocks=float(np.mean(stopped)),
    )


def run_settled_benchmark(studies: int = 2000, fixed_studies: int = 300) -> None:
    """Print the table: per scenario, each rule's rates and blocks."""
    say = functools.partial(print, flush=True)
    say(
        f"threshold {DEFAULT_THRESHOLD:g}, noise sd {NOISE:g}, looks after "
        f"{look_schedule()} blocks; until settled: {studies} studies per scenario, fixed "
        f"budget (86 blocks): {fixed_studies}"
    )
    say(
        "| differences | true median | truth | rule | says matters | says no effect "
        "| inconclusive | mean blocks |"
    )
    say("|---|---|---|---|---|---|---|---|")
    for scenario in SCENARIOS:
        for rule, result in (
            ("until settled", simulate_settled(scenario, studies)),
            ("fixed budget", simulate_fixed(scenario, fixed_studies)),
        ):
            say(
                f"| {scenario.shape} | {scenario.median:+.3f} | {scenario.truth} | {rule} | "
                f"{result.matters:.1%} | {result.no_effect:.1%} | {result.inconclusive:.1%} "
                f"| {result.mean_blocks:.1f} |"
            )
    say(
        f"\nTwo questions (--question both), until settled: {studies} studies per scenario; "
        "true medians of before − none and after − none, in the metric's units"
    )
    say(
        "| differences | before − none | after − none | truth: BN | truth: placement "
        "| says BN helps | says BN does not help / no effect | BN open at the cap "
        "| says placement matters | says no placement effect | placement open at the cap "
        "| mean blocks |"
    )
    say("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for two in TWO_QUESTION_SCENARIOS:
        got = simulate_two_questions(two, studies)
        say(
            f"| {two.shape} | {two.before:+.3f} | {two.after:+.3f} | {two.bn_truth} | "
            f"{two.placement_truth} | {got.bn_helps:.1%} | {got.bn_no_help:.1%} | "
            f"{got.bn_open:.1%} | {got.placement_matters:.1%} | {got.placement_no_effect:.1%} "
            f"| {got.placement_open:.1%} | {got.mean_blocks:.1f} |"
        )
