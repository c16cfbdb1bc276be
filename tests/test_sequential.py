"""The anytime-valid confidence sequence and the until-settled rule, on simulated studies
whose truth is known (analysis only: nothing is trained)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bnsearch.backends._budget import settled_verdict
from bnsearch.bench import SCENARIOS, look_schedule, simulate_settled
from bnsearch.bench._settled import (
    TWO_QUESTION_SCENARIOS,
    TwoQuestionScenario,
    simulate_two_questions,
)
from bnsearch.config import QUESTIONS, StudyConfig
from bnsearch.stats import Side, analyze, min_blocks_to_settle
from bnsearch.stats._sequential import (
    median_confidence_sequence,
    ruling_count,
    settle,
    sign_e_value,
)
from tests.test_analysis import _block_results

STUDIES = 2000


def test_eight_blocks_of_one_sign_are_the_fewest_that_can_settle():
    assert min_blocks_to_settle() == 8
    assert sign_e_value(8, 8) >= 2 / 0.05 > sign_e_value(7, 7)
    assert math.isinf(median_confidence_sequence([-1.0] * 7)[1])
    low, high = median_confidence_sequence([-0.3, -0.2, -0.25, -0.1, -0.15, -0.2, -0.22, -0.18])
    assert (low, high) == (-0.3, -0.1)  # all eight must agree: the extreme order statistics


def test_the_sequence_lies_between_order_statistics_and_narrows_with_more_blocks():
    rng = np.random.default_rng(1)
    diffs = rng.normal(0.2, 0.1, 400)
    widths = []
    for n in (20, 50, 100, 400):
        low, high = median_confidence_sequence(diffs[:n])
        k = ruling_count(n)
        ordered = np.sort(diffs[:n])
        assert (low, high) == (ordered[n - k], ordered[k - 1])
        assert low < 0.2 < high
        widths.append(high - low)
    assert widths == sorted(widths, reverse=True)


def test_a_diverged_block_counts_as_one_sign_whatever_its_size():
    calm = list(np.random.default_rng(2).normal(-0.2, 0.02, 20))
    wild = calm[:-1] + [1e17]  # one trial blew up: a huge difference of the other sign
    assert settle(*median_confidence_sequence(calm), 0.01) is Side.BELOW
    low, high = median_confidence_sequence(wild)
    assert -0.3 < low < high < -0.1  # one wild block does not move the answer
    assert settle(low, high, 0.01) is Side.BELOW


def test_settle_reads_the_interval_against_the_threshold():
    assert settle(-0.3, -0.02, 0.01) is Side.BELOW
    assert settle(0.02, 0.3, 0.01) is Side.ABOVE
    assert settle(-0.005, 0.009, 0.01) is Side.INSIDE
    assert settle(-0.005, 0.02, 0.01) is Side.OPEN
    assert settle(-math.inf, -0.5, 0.01) is Side.BELOW
    assert Side.BELOW.flipped is Side.ABOVE and Side.INSIDE.flipped is Side.INSIDE


def test_the_default_schedule_looks_first_after_eight_blocks_then_per_batch():
    assert look_schedule() == [8, 29, 50, 71, 86]


@pytest.mark.parametrize(
    "scenario",
    [s for s in SCENARIOS if s.truth == "no effect"],
    ids=lambda s: f"{s.shape}-{s.median:g}",
)
def test_placement_is_rarely_said_to_matter_when_the_true_median_is_within_the_threshold(
    scenario,
):
    outcome = simulate_settled(scenario, STUDIES, seed=11)
    assert outcome.studies == STUDIES
    assert outcome.matters <= 0.05


@pytest.mark.parametrize(
    "scenario",
    [s for s in SCENARIOS if math.isclose(s.median, 0.02)],
    ids=lambda s: s.shape,
)
def test_no_effect_is_rarely_said_when_the_true_median_is_twice_the_threshold(scenario):
    outcome = simulate_settled(scenario, STUDIES, seed=12)
    assert outcome.no_effect <= 0.05
    assert outcome.matters >= 0.9  # and the effect is found, well before the cap
    assert outcome.mean_blocks < 60


def test_repeated_naive_looks_would_inflate_the_error_the_sequence_avoids():
    """The reason for the sequence: a 95 % fixed-sample interval read at every look of the
    same schedule says 'matters' for a true median on the threshold far more often."""
    from scipy import stats

    rng = np.random.default_rng(5)
    diffs = 0.01 + 0.01 * rng.standard_normal((STUDIES, 86))
    naive = 0
    for row in diffs:
        for n in look_schedule():
            k = int(stats.binom.ppf(0.025, n, 0.5))  # the exact fixed-n sign interval
            ordered = np.sort(row[:n])
            if ordered[k] > 0.01 or ordered[n - k - 1] < -0.01:
                naive += 1
                break
    sequential = simulate_settled(SCENARIOS[2], STUDIES, seed=5).matters  # normal, +0.01
    assert sequential <= 0.025 < naive / STUDIES


@pytest.mark.parametrize(
    "scenario", TWO_QUESTION_SCENARIOS, ids=lambda s: f"{s.shape}-{s.before:g}-{s.after:g}"
)
def test_the_two_question_rule_rarely_says_either_matters_when_it_does_not(scenario):
    """Until settled with both questions (the default): "BN helps" where no BN placement
    beats `none` by more than the threshold, and "placement matters" where before − after
    lies within it, each in at most 5 % of the studies; where they do matter, found."""
    outcome = simulate_two_questions(scenario, 1000, seed=21)
    if scenario.bn_truth == "no help":
        assert outcome.bn_helps <= 0.05
    elif min(scenario.before, scenario.after) <= -0.05:
        assert outcome.bn_helps >= 0.95 and outcome.bn_no_help == 0
    else:
        assert outcome.bn_no_help <= 0.05 and outcome.bn_helps >= 0.9
    if scenario.placement_truth == "no effect":
        assert outcome.placement_matters <= 0.05
    else:
        assert outcome.placement_no_effect <= 0.05 and outcome.placement_matters >= 0.9


def test_the_two_question_rule_stops_on_the_question_asked():
    clear_bn = TwoQuestionScenario("normal", -0.05, -0.05)  # BN helps; placement: no effect
    both = simulate_two_questions(clear_bn, 500, seed=22)
    bn_only = simulate_two_questions(clear_bn, 500, seed=22, question="bn")
    assert bn_only.mean_blocks == 8 < both.mean_blocks  # no effect needs a narrow interval
    assert bn_only.bn_helps == both.bn_helps == 1.0
    assert bn_only.placement_open > 0.9 and both.placement_no_effect > 0.95


@pytest.mark.parametrize(
    ("effects", "blocks"),
    [
        ({"before": 0.0, "after": 0.0005, "none": 0.1}, 8),  # BN helps at the first look
        ({"before": 0.05, "after": 0.08, "none": 0.0}, 12),  # BN does not help
        ({"before": 0.0, "after": 0.01, "none": 0.2}, 29),  # before − after on the threshold
        ({"before": 0.0, "after": 0.0, "none": 0.0}, 40),  # no effect anywhere
        ({"before": 0.0, "after": 0.1, "none": 0.2}, 5),  # too few blocks to bound any interval
    ],
)
def test_the_stop_rule_decides_as_the_full_verdict_by_the_sequences_alone(effects, blocks):
    """The look after each batch computes only the deciding intervals: no bootstrap interval,
    no Wilcoxon test (NaN), and the same settled decision as the full verdict shown later."""
    results = _block_results(effects, blocks, 0.005, seed=3)
    for question in QUESTIONS:
        full = analyze(results, until="settled", question=question)
        look = analyze(results, until="settled", question=question, decide_only=True)
        assert (look.settled, look.words) == (full.settled, full.words)
        assert [a.outcome for a in look.answers] == [a.outcome for a in full.answers]
        assert look.bn.sides == full.bn.sides
        assert [(p.cs_low, p.cs_high) for p in look.pairs] == [
            (p.cs_low, p.cs_high) for p in full.pairs
        ]
        assert all(math.isnan(p.ci_low) and math.isnan(p.p_holm) for p in look.pairs)
        assert all(
            p.interval_text("budget").startswith("n/a") and p.p_text().startswith("n/a")
            for p in look.pairs
        )
        said = settled_verdict(StudyConfig(question=question, verbose=False), results)
        expected = f"settled after {full.n_blocks} blocks: {full.words.replace('`', '')}"
        assert said == (expected if full.settled else None)
    if blocks >= 8:  # the full verdict did run the bootstrap; the fixed budget always does
        assert not math.isnan(full.primary.ci_low)
        budget = analyze(results, until="budget", decide_only=True)
        assert all(not math.isnan(p.ci_low) for p in budget.pairs)
