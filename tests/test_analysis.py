from __future__ import annotations

import numpy as np
import pytest

from bnsearch.stats import analyze
from bnsearch.stats._verdict import holm
from bnsearch.trial import BNConfig, TrialResult, TrialSpec, TrialState


def _block_results(effects: dict[str, float], n_blocks: int, noise: float, seed: int = 0):
    """Blocks whose final val_loss is a block level + the placement's effect + noise."""
    rng = np.random.default_rng(seed)
    results, number = [], 0
    for block in range(n_blocks):
        level = rng.uniform(0.3, 0.6)
        for placement, effect in effects.items():
            value = level + effect + rng.normal(0, noise)
            history = {m: [value] for m in ("loss", "val_loss")}
            history.update({m: [0.5] for m in ("accuracy", "val_accuracy")})
            spec = TrialSpec(number, BNConfig(placement=placement), seed=block, block=block)
            results.append(TrialResult(spec, TrialState.COMPLETE, history))
            number += 1
    return results


def test_holm_matches_the_step_down_definition():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.001]) == pytest.approx([0.5, 0.002])


def test_clear_effect_gives_a_verdict_for_the_better_placement():
    results = _block_results({"before": 0.0, "after": 0.1, "none": 0.2}, 20, 0.01)
    verdict = analyze(results)
    assert verdict.outcome == "before"
    assert verdict.n_blocks == 20
    primary = verdict.primary
    assert (primary.first, primary.second) == ("before", "after")
    assert primary.ci_high < -0.01 and primary.mean == pytest.approx(-0.1, abs=0.01)
    assert primary.p_holm < 0.05
    assert "CI" in verdict.statement and "20 blocks" in verdict.statement
    assert len(verdict.pairs) == 3


def test_after_wins_when_it_is_better():
    verdict = analyze(_block_results({"before": 0.05, "after": 0.0}, 15, 0.005))
    assert verdict.outcome == "after"


def test_tiny_effects_are_no_effect_larger_than_the_threshold():
    results = _block_results({"before": 0.0, "after": 0.001}, 30, 0.002)
    verdict = analyze(results, threshold=0.01)
    assert verdict.outcome == "no-effect"
    assert verdict.primary.ci_low > -0.01 and verdict.primary.ci_high < 0.01


def test_noisy_small_study_is_inconclusive_and_says_how_many_more_blocks():
    results = _block_results({"before": 0.0, "after": 0.02}, 6, 0.08)
    verdict = analyze(results, threshold=0.01)
    assert verdict.outcome == "inconclusive"
    assert verdict.placement.extra_blocks_needed and verdict.placement.extra_blocks_needed > 0
    assert str(verdict.placement.extra_blocks_needed) in verdict.statement


def test_failed_members_leave_their_pair_and_are_counted():
    results = _block_results({"before": 0.0, "after": 0.1}, 10, 0.01)
    results[1].state = TrialState.FAILED  # block 0's `after`
    verdict = analyze(results)
    assert verdict.n_blocks == 9
    assert verdict.excluded_blocks == {"before": 0, "after": 1}


def test_a_diverged_trial_loses_its_block_and_an_exception_leaves_it():
    """`none` diverging (NaN) in every block is BN helping, not an empty comparison; a
    trial that raised tells nothing about its placement and leaves its block."""
    results = _block_results({"before": 0.0, "after": 0.0, "none": 0.0}, 12, 0.001)
    for r in results:
        if r.config.placement == "none":
            r.state, r.fail_reason = TrialState.FAILED, "loss became nan at epoch 3"
            r.history = {m: [float("nan")] for m in r.history}
    results[0].state, results[0].fail_reason = TrialState.FAILED, "ValueError: bad shape"
    for until in ("settled", "budget"):
        verdict = analyze(results, until=until)
        assert verdict.bn.outcome == "helps", verdict.bn.text
        assert verdict.diverged_blocks == {"before": 0, "after": 0, "none": 12}
        assert verdict.excluded_blocks == {"before": 1, "after": 0, "none": 0}
        before_none = next(p for p in verdict.pairs if (p.first, p.second) == ("before", "none"))
        assert before_none.n_blocks == 11 and before_none.median < -1e30
        if until == "budget":  # before and after equal in every block, within noise
            assert verdict.outcome == "no-effect"
    # Both members of a pair diverged in blocks 0-5: those blocks leave that pair only.
    for r in results:
        if r.config.placement == "after" and r.spec.block < 6:
            r.state, r.fail_reason = TrialState.FAILED, "val_loss became inf at epoch 1"
    verdict = analyze(results, until="budget")
    pair = {(p.first, p.second): p for p in verdict.pairs}
    assert pair["after", "none"].blocks == tuple(range(6, 12))
    assert pair["before", "after"].n_blocks == 11  # block 0's `before` raised
    # `after` diverged in blocks 1-5: `before` wins those five by the whole of DIVERGED_LOSS.
    assert sum(d < -1e30 for d in pair["before", "after"].differences) == 5


def test_too_few_blocks_is_insufficient():
    verdict = analyze(_block_results({"before": 0.0, "after": 0.1}, 2, 0.01))
    assert verdict.outcome == "insufficient"


def test_accuracy_metric_prefers_higher_values():
    results = _block_results({"before": 0.0, "after": 0.1}, 12, 0.01)
    for r in results:  # copy the loss-like numbers into accuracy: higher `after` wins now
        r.history["val_accuracy"] = list(r.history["val_loss"])
    assert analyze(results, metric="val_accuracy").outcome == "after"


def test_searched_activation_gets_a_placement_verdict_of_its_own():
    tanh = _block_results({"before": 0.0, "after": 0.2, "none": 0.2}, 12, 0.01, seed=1)
    relu = _block_results({"before": 0.1, "after": 0.0, "none": 0.1}, 12, 0.01, seed=2)
    results = []
    for activation, group, offset in (("tanh", tanh, 0), ("relu", relu, 100)):
        for r in group:
            spec = TrialSpec(
                r.spec.number + offset * 3,
                r.config.replace(activation=activation),
                r.spec.seed,
                r.spec.block + offset,
            )
            results.append(TrialResult(spec, r.state, r.history))
    verdict = analyze(results)
    assert set(verdict.by_activation) == {"tanh", "relu"}
    assert verdict.by_activation["tanh"].outcome == "before"
    assert verdict.by_activation["relu"].outcome == "after"
    assert verdict.by_activation["tanh"].n_blocks == 12
    (relu_line,) = [line for line in verdict.summary_lines() if line.startswith("  with relu: ")]
    assert "`after` is better than `before`" in relu_line
    assert analyze(tanh).by_activation == {}  # one activation: nothing to split


def test_a_placement_whose_confirmation_runs_all_failed_is_said_so_not_shown_as_nan():
    results = _block_results({"before": 0.0, "after": 0.1, "none": 0.2}, 5, 0.01)
    confirm = [
        TrialResult(
            TrialSpec(100 + k, BNConfig(placement="none"), k, 99, phase="confirm"),
            TrialState.FAILED, {"val_loss": [float("nan")]}, fail_reason="diverged",
        )
        for k in range(3)
    ]  # fmt: skip
    lines = analyze(results, confirmation_phase=confirm).summary_lines()
    assert "  best none: no fresh-seed run completed (each diverged or failed)" in lines
    assert not [line for line in lines if "nan" in line]


def test_until_settled_the_confidence_sequence_alone_decides_and_says_after_how_many_blocks():
    results = _block_results({"before": 0.0, "after": 0.1, "none": 0.2}, 8, 0.01)
    verdict = analyze(results, until="settled")
    assert verdict.outcome == "before" and verdict.settled and verdict.until == "settled"
    assert "settled after 8 blocks" in verdict.statement
    assert "wholly beyond the threshold" in verdict.statement
    primary = verdict.primary
    assert primary.cs_high < -0.01 and primary.cs_low <= primary.ci_low  # wider: valid at any look


def test_until_settled_seven_blocks_cannot_settle_even_a_large_effect():
    verdict = analyze(_block_results({"before": 0.0, "after": 0.3}, 7, 0.01), until="settled")
    assert verdict.outcome == "insufficient" and not verdict.settled
    assert "at least 8 complete blocks" in verdict.statement
    # The fixed-budget rule would already call it (and be wrong too often if read per batch).
    assert analyze(_block_results({"before": 0.0, "after": 0.3}, 7, 0.01)).outcome == "before"


def test_until_settled_no_effect_needs_the_sequence_inside_the_threshold():
    results = _block_results({"before": 0.0, "after": 0.0005}, 40, 0.002)
    verdict = analyze(results, threshold=0.01, until="settled")
    assert verdict.outcome == "no-effect" and "wholly inside ±0.01" in verdict.statement


def test_until_settled_a_study_is_settled_only_when_every_activation_is():
    tanh = _block_results({"before": 0.0, "after": 0.1}, 10, 0.01)
    relu = _block_results({"before": 0.0, "after": 0.012}, 10, 0.05, seed=3)
    results = [
        TrialResult(
            TrialSpec(
                r.spec.number + offset * 2,
                r.config.replace(activation=activation),
                r.spec.seed,
                r.spec.block + offset,
            ),
            r.state,
            r.history,
        )
        for activation, group, offset in (("tanh", tanh, 0), ("relu", relu, 100))
        for r in group
    ]
    verdict = analyze(results, until="settled")
    assert verdict.by_activation["tanh"].settled
    assert not verdict.by_activation["relu"].settled
    assert not verdict.settled
