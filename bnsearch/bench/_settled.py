"""``python -m bnsearch bench --settled``: the stopping rule against simulated studies.

Analysis only, nothing is trained: each simulated study draws one paired difference
``before − after`` per block from a known distribution, is looked at on the schedule a real
study uses (:func:`bnsearch.backends.batch_room` with the population engine's 64
trials and three placements: the first look after 8 blocks, then one per batch of 21), and
stops by the real rule (:func:`bnsearch.stats.settle` on
:func:`~bnsearch.stats.median_confidence_sequence`) or at the default cap of 86 blocks.
Beside it, the fixed-budget rule (all 86 blocks, bootstrap interval and Wilcoxon test, the
verdict's own code) on fewer studies, since its bootstrap costs ~50 ms a study.

The truth of each scenario is known by construction, so the table shows how often each rule
says "placement matters" when the median difference is 0 or inside the threshold (an
error), "no effect" when it is twice the threshold (an error), and how many blocks each
needed. A benchmark, not a test; ``tests/test_sequential.py`` asserts the error rates.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

import numpy as np

from bnsearch.backends import batch_room
from bnsearch.config import DEFAULT_THRESHOLD, StudyConfig
from bnsearch.stats import fixed_budget_side, median_confidence_sequence, settle

__all__ = [
    "SCENARIOS",
    "Scenario",
    "look_schedule",
    "run_settled_benchmark",
    "simulate_fixed",
    "simulate_settled",
]

NOISE = 0.01  # spread of the per-block differences: about the default study's
DIVERGED = 1e6  # a diverged trial's difference: huge and finite, of either sign


@dataclass(frozen=True)
class Scenario:
    """Per-block differences ``median + noise`` of one shape."""

    shape: str  # "normal" | "heavy-tailed" | "diverged outliers"
    median: float

    def draw(self, rng: np.random.Generator, studies: int, blocks: int) -> np.ndarray:
        size = (studies, blocks)
        if self.shape == "heavy-tailed":
            noise = NOISE * rng.standard_t(2, size)
        else:
            noise = NOISE * rng.standard_normal(size)
        if self.shape == "diverged outliers":  # 5 % of blocks, either placement diverged
            diverged = rng.random(size) < 0.05
            noise = np.where(diverged, DIVERGED * rng.choice([-1.0, 1.0], size), noise)
        return self.median + noise

    @property
    def truth(self) -> str:
        if abs(self.median) <= DEFAULT_THRESHOLD:
            return "no effect"
        return "matters"


SCENARIOS = tuple(
    Scenario(shape, factor * DEFAULT_THRESHOLD)
    for shape in ("normal", "heavy-tailed", "diverged outliers")
    for factor in (0.0, 0.5, 1.0, 2.0, 5.0)
)


def look_schedule(
    cap_blocks: int = 86, capacity_trials: int = 64, placements: int = 3
) -> list[int]:
    """The numbers of blocks at which a study run until settled looks, as the backends
    plan their batches."""

    config = StudyConfig(until="settled", verbose=False)
    looks, have = [], 0
    while have < cap_blocks:
        room = batch_room(config, capacity_trials, have * placements) // placements
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
    said, stopped = [], []
    looks = look_schedule(cap_blocks)
    for row in diffs:
        side = None
        for n in looks:
            side = settle(*median_confidence_sequence(row[:n]), DEFAULT_THRESHOLD)
            if side is not None:
                break
        said.append(side)
        stopped.append(n)
    return _outcomes(said, stopped)


def simulate_fixed(
    scenario: Scenario, studies: int = 300, seed: int = 0, blocks: int = 86
) -> Outcomes:
    """The fixed-budget rule (the verdict's bootstrap interval and Wilcoxon test)."""

    diffs = scenario.draw(np.random.default_rng(seed), studies, blocks)
    said = [fixed_budget_side(row, DEFAULT_THRESHOLD, seed=i) for i, row in enumerate(diffs)]
    return _outcomes(said, [blocks] * studies)


def _outcomes(said: list[str | None], stopped: list[int]) -> Outcomes:
    n = len(said)
    return Outcomes(
        matters=sum(s in ("below", "above") for s in said) / n,
        no_effect=sum(s == "inside" for s in said) / n,
        inconclusive=sum(s is None for s in said) / n,
        mean_blocks=float(np.mean(stopped)),
        studies=n,
    )


def run_settled_benchmark(
    studies: int = 2000, fixed_studies: int = 300, out: TextIO | None = None
) -> None:
    """Print the table: per scenario, each rule's rates and blocks."""
    stream = out or sys.stdout
    say: Callable[[str], None] = lambda line: print(line, file=stream, flush=True)  # noqa: E731
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
