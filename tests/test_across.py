"""The verdict across datasets: ranks, the Friedman test, Holm-corrected pairwise tests and
what they can and cannot say with few datasets (analysis only)."""

from __future__ import annotations

import numpy as np
import pytest

from bnsearch.report._plots import plot_critical_difference
from bnsearch.stats import analyze, compare_across, dataset_scores
from tests.test_analysis import _block_results


def _dataset(name: str, effects: dict[str, float], seed: int, metric: str = "val_loss"):
    results = _block_results(effects, 10, 0.01, seed=seed)
    return dataset_scores(name, analyze(results, metric=metric), results)


def test_scores_are_medians_over_complete_blocks_and_ranks_put_the_best_first():
    data = _dataset("a", {"before": 0.0, "after": 0.1, "none": 0.2}, seed=1)
    assert data.scores["before"] < data.scores["after"] < data.scores["none"]
    assert data.differences[("before", "after")] == pytest.approx(-0.1, abs=0.02)
    across = compare_across([data, _dataset("b", {"before": 0.0, "after": 0.05, "none": 0.1}, 2)],
                            "val_loss")  # fmt: skip
    assert across.mean_ranks == {"before": 1.0, "after": 2.0, "none": 3.0}


def test_a_placement_best_on_every_one_of_eight_datasets_is_found_consistent():
    datasets = [
        _dataset(f"d{i}", {"before": 0.0, "after": 0.02 + 0.01 * i, "none": 0.05}, seed=i)
        for i in range(8)
    ]
    across = compare_across(datasets, "val_loss")
    assert across.friedman_p < 0.01
    before_after = next(p for p in across.pairs if (p.first, p.second) == ("before", "after"))
    assert before_after.first_better == 8 and before_after.p_holm < 0.05
    assert across.statement.startswith("placements differ consistently across datasets")
    assert "`before` beats `after`" in across.statement
    assert across.critical_difference == pytest.approx(2.343 * np.sqrt(3 * 4 / (6 * 8)))


def test_mixed_directions_are_no_consistent_difference():
    datasets = [
        _dataset("up", {"before": 0.0, "after": 0.1, "none": 0.05}, seed=1),
        _dataset("down", {"before": 0.1, "after": 0.0, "none": 0.05}, seed=2),
        _dataset("up2", {"before": 0.0, "after": 0.1, "none": 0.05}, seed=3),
        _dataset("down2", {"before": 0.1, "after": 0.0, "none": 0.05}, seed=4),
    ]
    across = compare_across(datasets, "val_loss")
    assert across.friedman_p > 0.05
    assert across.statement.startswith("no consistent placement difference")


def test_with_three_datasets_it_says_the_pairwise_tests_cannot_reach_five_percent():
    datasets = [_dataset(f"d{i}", {"before": 0.0, "after": 0.1, "none": 0.2}, i) for i in range(3)]
    across = compare_across(datasets, "val_loss")
    assert "cannot reach 5 % with 3 datasets (smallest possible p 0.25)" in across.statement


def test_accuracy_studies_rank_the_highest_first():
    results = _block_results({"before": 0.0, "after": 0.1}, 10, 0.01)
    for r in results:  # accuracy = 1 - loss: `before` has the higher accuracy
        r.history["val_accuracy"] = [1 - r.history["val_loss"][0]]
    data = dataset_scores("acc", analyze(results, metric="val_accuracy"), results)
    other = _dataset("loss", {"before": 0.0, "after": 0.1}, seed=5)
    across = compare_across([data, other], "each study's metric")
    assert across.mean_ranks == {"before": 1.0, "after": 2.0}
    (pair,) = across.pairs
    assert pair.first_better == 2 and across.friedman_p is None  # two placements


def test_fewer_than_two_datasets_give_no_verdict_across(tmp_path):
    across = compare_across([_dataset("only", {"before": 0.0, "after": 0.1}, 1)], "val_loss")
    assert across.statement.startswith("no verdict across datasets")


def test_the_critical_difference_plot_is_written(tmp_path):
    datasets = [_dataset(f"d{i}", {"before": 0.0, "after": 0.1, "none": 0.2}, i) for i in range(4)]
    path = tmp_path / "cd.png"
    plot_critical_difference(compare_across(datasets, "val_loss"), path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_both_questions_are_carried_across_datasets():
    helps = [_dataset(f"h{i}", {"before": 0.0, "after": 0.05, "none": 0.1}, i) for i in range(3)]
    hurts = _dataset("hurt", {"before": 0.1, "after": 0.15, "none": 0.0}, 9)
    across = compare_across([*helps, hurts], "val_loss")
    assert across.bn_statement.startswith(
        "Does BN help? per study: BN helps 3, BN does not help 1 (of 4); across datasets: "
        "`before` against `none`: better in 3 of 4"
    )
    assert "Per-study verdicts: before or after? before 4; does BN help?" in across.statement
    bare = compare_across([_dataset("a", {"before": 0.0, "after": 0.1}, 1)] * 2, "val_loss")
    assert bare.bn_statement.startswith("Does BN help? not asked")
