"""The thread's two questions, each decided by the study's rule on the paired blocks: does BN
help here (each BN placement against ``none``, closed test) and before or after; what a
study waits for (``--question``), and where the fresh-seed confirmation disagrees with the
blocks. Simulated blocks (nothing trained) and the real statistics throughout."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from bnsearch.config import QUESTIONS, SETTINGS, StudyConfig
from bnsearch.errors import ConfigError
from bnsearch.stats import (
    PlacementConfirmation,
    Side,
    analyze,
    confidence_bounds,
    settle_codes,
    significant,
)
from bnsearch.stats._sequential import (
    closed_test,
    median_confidence_sequence,
    selection_test,
    settle,
    sign_e_value,
)
from bnsearch.trial import BNConfig, TrialResult, TrialSpec, TrialState, plain
from tests.test_analysis import _block_results


def _statement_words(verdict) -> str:
    return " ".join([verdict.statement, verdict.headline, *verdict.summary_lines()])


@pytest.mark.parametrize("until", ["settled", "budget"])
def test_bn_helps_while_placement_does_not_matter(until):
    results = _block_results({"before": 0.0, "after": 0.0005, "none": 0.1}, 8, 0.001)
    verdict = analyze(results, until=until)
    assert verdict.bn.outcome == "helps" and verdict.bn.helping == ("before", "after")
    assert verdict.outcome == "no-effect"
    assert verdict.headline.startswith(
        "BN helps (`before` and `after` beat `none`); no placement effect beyond the threshold"
    )
    assert verdict.statement.startswith("Does BN help? BN helps: `before` and `after` beat")
    assert "Before or after? no placement effect larger than 0.01" in verdict.statement
    assert verdict.settled


@pytest.mark.parametrize("until", ["settled", "budget"])
def test_bn_does_not_help_when_none_is_best_and_never_says_it_helps(until):
    results = _block_results({"before": 0.05, "after": 0.08, "none": 0.0}, 12, 0.005)
    verdict = analyze(results, until=until)
    assert verdict.bn.outcome == "no-help"
    assert verdict.bn.sides == {"before": Side.ABOVE, "after": Side.ABOVE}
    assert "BN helps" not in _statement_words(verdict)
    assert verdict.bn.statement.startswith("BN does not help: `none` is better than `before`")
    assert verdict.outcome == "before"  # the placement answer still stands on its own


def test_bn_within_the_threshold_is_no_effect_and_a_mixed_answer_is_as_good_or_better():
    same = analyze(
        _block_results({"before": 0.0, "after": 0.0, "none": 0.0}, 40, 0.001), until="settled"
    )
    assert same.bn.outcome == "no-effect"
    assert same.bn.statement.startswith("no effect of BN beyond the threshold 0.01")
    mixed = analyze(
        _block_results({"before": 0.0, "after": 0.1, "none": 0.0}, 40, 0.001), until="settled"
    )
    assert mixed.bn.outcome == "no-help"
    assert mixed.bn.sides == {"before": Side.INSIDE, "after": Side.ABOVE}
    assert "`none` is as good or better" in mixed.bn.statement
    assert "BN helps" not in _statement_words(mixed)


def test_a_small_edge_over_none_is_never_called_help():
    results = _block_results({"before": -0.004, "after": 0.0, "none": 0.0}, 60, 0.002, seed=4)
    for until in ("settled", "budget"):
        verdict = analyze(results, until=until)
        assert verdict.bn.outcome in ("no-effect", "inconclusive")
        assert "BN helps" not in _statement_words(verdict)


def test_accuracy_reads_higher_as_better_for_both_questions():
    results = _block_results({"before": 0.1, "after": 0.1, "none": 0.0}, 10, 0.001)
    for r in results:
        r.history["val_accuracy"] = list(r.history["val_loss"])
    verdict = analyze(results, metric="val_accuracy", until="settled")
    assert verdict.bn.outcome == "helps" and verdict.outcome == "no-effect"


def test_one_bn_placement_winning_every_block_is_named_at_the_first_look_without_an_alpha_split():
    # Eight blocks of one sign clear 2/alpha = 40 but not the 80 a Bonferroni split needs:
    assert 2 / 0.05 <= sign_e_value(8, 8) < 2 / 0.025
    results = _block_results({"before": 0.0, "after": 0.15, "none": 0.15}, 8, 0.01)
    verdict = analyze(results, until="settled")
    assert verdict.bn.outcome == "helps" and verdict.bn.helping == ("before",)
    assert verdict.bn.sides["after"] is Side.OPEN  # after − none: within noise, not settled yet
    assert "`after` against `none`: not settled" in verdict.bn.statement
    assert verdict.settled  # both questions answered: the study may stop at 8 blocks


def test_the_closed_test_bets_on_the_leader_so_far_and_names_only_what_every_set_rejects():
    beyond = np.zeros((8, 2), bool)
    beyond[:, 0] = True
    present = np.ones((8, 2), bool)
    assert closed_test(beyond, present).tolist() == [True, False]
    # The set's test bets block by block on the placement ahead so far (ties: the first):
    # `after` (column 1) wins every block but the first; the bets of blocks 0 and 1 went to
    # `before` (no lead yet), so the set needs 16 blocks where `after` alone needs 15.
    beyond = np.zeros((16, 2), bool)
    beyond[1:, 1] = True
    present = np.ones((16, 2), bool)
    assert closed_test(beyond[:15], present[:15]).tolist() == [False, False]
    assert selection_test(beyond[:15, 1:], present[:15, 1:]).item()  # after's own test
    assert closed_test(beyond, present).tolist() == [False, True]
    # Without a winner, no set is rejected and nothing is named:
    rng = np.random.default_rng(0)
    noise = rng.random((200, 29, 2)) < 0.5
    assert closed_test(noise, np.ones_like(noise)).mean() < 0.05


def test_the_array_rule_is_the_verdicts_rule():
    rng = np.random.default_rng(3)
    diffs = rng.normal(0.01, 0.02, (300, 29))
    low, high = confidence_bounds(diffs)
    codes = settle_codes(low, high, 0.01)
    for row, lo, hi, code in zip(diffs, low, high, codes, strict=True):
        assert (lo, hi) == median_confidence_sequence(row)
        assert code == settle(lo, hi, 0.01)


@pytest.mark.parametrize(
    ("question", "settled"), [("both", False), ("bn", True), ("placement", False)]
)
def test_a_study_stops_when_the_questions_it_asks_are_settled(question, settled):
    # BN clearly helps; before − after sits on the threshold and cannot settle.
    results = _block_results({"before": 0.0, "after": 0.01, "none": 0.2}, 29, 0.01, seed=5)
    verdict = analyze(results, until="settled", question=question)
    assert verdict.bn.outcome == "helps" and verdict.outcome == "inconclusive"
    assert verdict.settled is settled
    if settled:
        assert not verdict.still_open
    else:
        assert "“before or after?” is still open" in verdict.still_open
        assert verdict.still_open in verdict.statement and verdict.still_open in "\n".join(
            verdict.summary_lines()
        )
    if question == "both":
        assert "--question bn stops on the settled one alone" in verdict.still_open


def test_the_question_setting_is_one_of_three_and_the_same_in_config_and_stats():
    (question,) = (s for s in SETTINGS if s.name == "question")
    assert question.choices == QUESTIONS == ("both", "bn", "placement")
    assert StudyConfig().question == "both"
    with pytest.raises(ConfigError, match="question"):
        StudyConfig(question="which")
    with pytest.raises(ValueError, match="question"):
        analyze([], question="which")


def _with_confirmations(verdict, means: dict[str, float]):
    confirmations = tuple(
        PlacementConfirmation(p, {"placement": p, "learning_rate": np.float64(0.01)},
                              (m - 0.001, m, m + 0.001))
        for p, m in means.items()
    )  # fmt: skip
    return dataclasses.replace(verdict, confirmations=confirmations)


def test_the_confirmation_ranking_against_the_blocks_is_said_with_why():
    # The blocks: `before` beats `none` at a typical configuration; the tuned bests: `none`.
    results = _block_results({"before": 0.0, "after": 0.0, "none": 0.1}, 8, 0.001)
    verdict = _with_confirmations(
        analyze(results, until="settled"), {"before": 0.308, "after": 0.31, "none": 0.168}
    )
    (note,) = verdict.disagreements
    assert note.startswith("fresh seeds and blocks disagree: the blocks say `before` beats `none`")
    assert "ranks `none` ahead (`none` 0.168 ± 0.001 against `before` 0.308 ± 0.001)" in note
    assert "typical configuration" in note and "tuned best" in note
    assert note in "\n".join(verdict.summary_lines())
    # Blocks that do not settle it, while the confirmation separates `none`:
    open_ = analyze(_block_results({"before": 0.0, "after": 0.0, "none": 0.0}, 8, 0.05))
    (note,) = _with_confirmations(
        open_, {"before": 0.172, "after": 0.18, "none": 0.111}
    ).disagreements
    assert note.startswith("fresh seeds go further: the fresh-seed confirmation ranks `none` first")
    assert "(`none` 0.111 ± 0.001 against `before` 0.172 ± 0.001), which the blocks do" in note
    noisy = dataclasses.replace(open_, confirmations=(
        PlacementConfirmation("none", {}, (0.109, 0.111, 0.113)),
        PlacementConfirmation("before", {}, (0.05, 0.172, 0.294)),
    ))  # fmt: skip
    assert "within twice the seeds' standard error" in noisy.disagreements[0]
    # Agreement says nothing:
    agree = _with_confirmations(analyze(results), {"before": 0.1, "after": 0.11, "none": 0.3})
    assert agree.disagreements == []


def test_numbers_are_significant_digits_whatever_their_size_and_plain_values():
    assert significant(-11354252853116920.0) == "-1.135e+16"
    assert significant(-0.14944136, signed=True) == "-0.1494"
    assert significant(0.0144464, signed=True) == "+0.01445"
    assert significant(-0.17, 3, signed=True, zeros=True) == "-0.170"
    assert significant(math.inf) == "inf" and significant(-math.inf) == "-inf"
    assert plain(np.float64(0.5)) == 0.5 and type(plain(np.float64(0.5))) is float
    assert plain((np.int64(8), np.int64(4))) == (8, 4)
    # A diverged trial's loss (huge, finite) reads in significant digits, not 17 digits:
    results = _block_results({"before": 0.0, "after": 0.1, "none": 0.2}, 9, 0.01)
    for r in results:
        if r.config.placement == "after" and r.spec.block in (0, 1, 2, 3, 4):
            r.history["val_loss"] = [1.1354252853116920e16]
    lines = "\n".join(analyze(results, until="settled").summary_lines())
    assert "e+16" in lines and "11354252853116920" not in lines and "np." not in lines


def test_a_study_without_none_answers_placement_only_and_says_bn_was_not_asked():
    results = _block_results({"before": 0.0, "after": 0.1}, 8, 0.01)
    verdict = analyze(results, until="settled", question="both")
    assert verdict.bn.outcome == "not-compared" and verdict.settled
    assert verdict.statement.startswith("`before` is better than `after`")


def test_blocks_whose_none_all_failed_say_so_instead_of_not_asked():
    results = _block_results({"before": 0.0, "after": 0.0, "none": 0.0}, 8, 0.01)
    for r in results:
        if r.config.placement == "none":
            r.state = TrialState.FAILED
    verdict = analyze(results, until="settled")
    assert verdict.bn.outcome == "insufficient"
    assert "no block compares BN with `none`" in verdict.bn.statement
    assert "none 8" in verdict.bn.statement


def test_per_activation_verdicts_carry_both_answers():
    tanh = _block_results({"before": 0.0, "after": 0.0, "none": 0.2}, 10, 0.001, seed=1)
    results = [
        TrialResult(
            TrialSpec(r.spec.number, BNConfig(placement=r.config.placement, activation=act),
                      r.spec.seed, r.spec.block + offset),
            r.state, r.history,
        )
        for act, offset in (("tanh", 0), ("relu", 100))
        for r in tanh
    ]  # fmt: skip
    verdict = analyze(results, until="settled")
    assert {v.bn.outcome for v in verdict.by_activation.values()} == {"helps"}
    assert any(line.startswith("  with relu: BN helps") for line in verdict.summary_lines())


@pytest.mark.parametrize("question", QUESTIONS)
def test_a_study_without_blocks_is_settled_for_no_question(question):
    verdict = analyze([], until="settled", question=question)
    assert not verdict.settled and verdict.bn.outcome == "insufficient"


def test_the_settle_rule_between_batches_asks_the_configured_question():
    from bnsearch.backends._budget import settled_verdict

    # BN clearly helps; before − after on the threshold: only --question bn may stop.
    results = _block_results({"before": 0.0, "after": 0.01, "none": 0.2}, 29, 0.01, seed=5)
    assert settled_verdict(StudyConfig(verbose=False), results) is None
    assert settled_verdict(StudyConfig(question="placement", verbose=False), results) is None
    said = settled_verdict(StudyConfig(question="bn", verbose=False), results)
    assert said.startswith(
        "settled after 29 blocks: BN helps (before and after beat none); before or after:"
    )
    assert said.isascii() and "`" not in said
    assert (
        settled_verdict(StudyConfig(until="budget", question="bn", verbose=False), results) is None
    )


def test_asking_only_whether_bn_helps_needs_none_among_the_placements():
    from bnsearch.trial import SearchSpace

    with pytest.raises(ConfigError, match="add none to --placements"):
        StudyConfig(question="bn", space=SearchSpace(placement=("before", "after")))
    StudyConfig(question="placement", space=SearchSpace(placement=("before", "after")))


def test_under_the_fixed_budget_two_blocks_answer_neither_question():
    verdict = analyze(_block_results({"before": 0.0, "after": 0.0, "none": 0.0}, 2, 0.0001))
    assert verdict.bn.outcome == "insufficient" and verdict.outcome == "insufficient"


@pytest.mark.parametrize("until", ["settled", "budget"])
@pytest.mark.parametrize(
    ("input_effect", "said"),
    [
        (0.05, "Control: `before`'s advantage survives against"),
        (0.0, "Control: `before`'s advantage does not survive"),
    ],
)
def test_with_input_the_verdict_says_whether_befores_advantage_survives_it(
    until, input_effect, said
):
    """``before`` beats ``after``; against BN on the inputs alone it survives where
    ``input`` is worse than ``before``, and not where it is as good (input scaling)."""
    effects = {"before": 0.0, "after": 0.1, "input": input_effect, "none": 0.2}
    verdict = analyze(_block_results(effects, 12, 0.002), until=until)
    assert verdict.outcome == "before"
    assert verdict.input_control.startswith(said)
    assert ("mostly input scaling" in verdict.input_control) == (input_effect == 0.0)
    if input_effect:
        assert "`before` is better than `input`" in verdict.input_control
    assert verdict.input_control in "\n".join(verdict.summary_lines())


def test_without_input_there_is_no_control_line():
    verdict = analyze(_block_results({"before": 0.0, "after": 0.1, "none": 0.2}, 12, 0.002))
    assert verdict.input_control == ""
    assert not any("Control:" in line for line in verdict.summary_lines())
