"""Honest on every dataset, the statistics' part (issue #36): a small study says what it
cannot know instead of printing ``nan``; a diverged trial's sentinel loses its block but
never reaches a printed or logged number; a regression reads as one in the summary and in
MLflow; validation rows that cannot rank the placements withhold the ranking."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest

from bnsearch.report import (
    outcome_label,
    run_note,
    verdict_details,
    verdict_glance,
    write_report,
    write_sweep_report,
)
from bnsearch.stats import compare_across, dataset_scores, verdict_for
from bnsearch.stats._format import MIN_IMPORTANCE_TRIALS
from bnsearch.trial import DIVERGED_LOSS, BNConfig, Phase, TrialResult, TrialSpec, TrialState
from tests.conftest import trial_runs
from tests.test_verdict_glance import _blocks

#: ``nan`` as a printed value; the prose of a failure ("loss became nan", "inf or nan",
#: "loss NaN or infinite") is not one.
_NAN = re.compile(r"(?<!became )(?<!or )\bnan\b(?! or inf)", re.IGNORECASE)
_NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?", re.IGNORECASE)


def _one_line(text: str) -> str:
    """``text`` with its wrapped lines joined, so a phrase split by wrapping is found."""
    return " ".join(text.split())


def _largest_number(text: str) -> float:
    return max((abs(float(n)) for n in _NUMBER.findall(text)), default=0.0)


def _study_report(folder: Path) -> str:
    (report,) = (folder / "mlruns" / "artifacts").rglob("report.md")
    return report.read_text()


@pytest.mark.trains
def test_a_small_study_prints_no_nan_no_importance_and_ranks_no_single_seed(
    tiny_csv, tmp_path, cli
):
    result = cli(
        "study", "--data", str(tiny_csv), "--target", "label", "--n-trials", "3",
        "--confirm-seeds", "1", "--epochs", "1", "--hidden-units", "4", "--verbose",
        "--study-name", "small", cwd=tmp_path,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr[-2000:]
    report = _study_report(tmp_path)
    for text in (result.stdout, report):
        assert not _NAN.search(text), _NAN.search(text)
        assert "importance: placement" not in text and "- placement: " not in text
        assert "fresh seeds go further" not in text and "disagree" not in text
        assert "1 seed: no ranking" in text
    printed = _one_line(result.stdout)
    assert "n/a (1 block)" in printed  # intervals, d_z, p-values of one block
    assert "d_z n/a (1 block)" in printed and "Wilcoxon p n/a (1 block)" in printed
    assert (
        "hyperparameter importance left out: 3 completed search trials; it needs at least "
        f"{MIN_IMPORTANCE_TRIALS}" in printed
    )
    assert "(1 fresh seed: no sd)" in printed and "+-" not in printed
    assert "| n/a (1 seed) |" in report  # the sd column of the confirmation table


def _confirmations(means: dict[str, float], diverged: str | None = None) -> list[TrialResult]:
    """Three fresh seeds per placement around ``means``; one seed of ``diverged`` diverges."""
    results = []
    for placement, mean in means.items():
        for seed in range(3):
            value = mean + 0.001 * seed
            spec = TrialSpec(
                1000 + len(results), BNConfig(placement=placement), seed=100 + seed, block=0,
                phase=Phase.CONFIRM,
            )  # fmt: skip
            result = TrialResult(spec, TrialState.COMPLETE, {"val_loss": [value]})
            if placement == diverged and seed == 0:
                result.state, result.fail_reason = TrialState.FAILED, "loss became inf at epoch 0"
                result.history = {"val_loss": [math.inf]}
            results.append(result)
    return results


def test_a_diverged_trial_loses_its_block_but_no_statistic_prints_or_logs_its_sentinel(tmp_path):
    results = _blocks(10, diverged_after={2, 5}) + _confirmations(
        {"before": 0.30, "after": 0.40, "none": 0.41}, diverged="after"
    )
    verdict = verdict_for(results, until="budget")
    primary = verdict.primary
    assert min(primary.differences) <= -DIVERGED_LOSS * 0.99  # the sentinel is in the blocks

    glance, details = verdict_glance(verdict), verdict_details(verdict)
    write_report(tmp_path, "demo", verdict, results, "Data: demo.")
    printed = "\n".join([*glance, *details, (tmp_path / "report.md").read_text()])
    printed += run_note("demo", verdict)

    assert _largest_number(printed) < 1e6, _largest_number(printed)
    assert any(line.startswith("  before - after ") and "before better" in line for line in glance)
    assert "(2 blocks with a diverged trial left out)" in _one_line(printed)  # the mean's
    assert abs(primary.mean + 0.1) < 0.01  # the mean of the other 8 blocks: before's 0.1
    assert "  after                 0.4015 +- 0.00071 (n=2, 1 diverged or failed)" in glance
    assert "sd over 2 fresh seeds; 1 more diverged or failed" in _one_line("\n".join(details))

    from bnsearch.tracking import MlflowTracker

    tracker = MlflowTracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "demo")
    tracker.start_study_run("demo", params={}, tags={})
    run_id = tracker.parent_run_id
    tracker.end_study_run_with_verdict(verdict, run_note("demo", verdict), "label")
    logged = tracker.client.get_run(run_id).data.metrics
    assert "verdict.median_difference" in logged and "verdict.mean_difference" in logged
    assert max(abs(v) for v in logged.values()) < 1e6, logged


def test_a_sweep_whose_study_mostly_diverged_prints_no_sentinel(tmp_path):
    """A study whose `after` diverged in most blocks scores the sentinel: it ranks last, and
    the sweep's page says `diverged` rather than the number."""
    scored = []
    for name, diverging in (("calm", set()), ("wild", set(range(6)))):
        results = _blocks(10, diverged_after=diverging)
        scored.append(dataset_scores(name, verdict_for(results), results))
    across = compare_across(scored, "val_loss")
    assert max(across.mean_ranks, key=across.mean_ranks.get) == "after"

    write_sweep_report(tmp_path, "demo", across)

    page = (tmp_path / "report.md").read_text()
    assert _largest_number(page) < 1e6, _largest_number(page)
    assert "diverged (3)" in page


@pytest.mark.trains
def test_a_regression_study_shows_val_mae_in_its_table_and_in_mlflow(tmp_path, cli):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((240, 5))
    y = x @ np.array([1.0, -2.0, 0.5, 0.0, 1.5]) + 0.1 * rng.standard_normal(240) + 3.0
    path = tmp_path / "reg.csv"
    np.savetxt(path, np.column_stack([x, y]), delimiter=",", header="a,b,c,d,e,target", comments="")

    result = cli(
        "study", "--data", str(path), "--target", "target", "--n-trials", "3",
        "--confirm-seeds", "0", "--epochs", "2", "--hidden-units", "4", "--standardize",
        "--study-name", "reg", cwd=tmp_path,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr[-2000:]
    (header,) = [line for line in result.stdout.splitlines() if line.startswith("placement ")]
    assert header.split() == [
        "placement", "complete", "pruned", "failed", "best", "val_loss", "median", "best",
        "val_mae", "median",
    ]  # fmt: skip
    assert not _NAN.search(result.stdout), result.stdout
    _, runs = trial_runs(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}", "reg")
    finished = [run for run in runs if run.info.status == "FINISHED"]
    assert finished, [run.data.tags for run in runs]
    for run in finished:
        metrics = run.data.metrics
        assert {"val_mae", "final_val_mae", "best_val_mae"} <= set(metrics), sorted(metrics)
        assert "final_val_accuracy" not in metrics


def test_validation_rows_that_cannot_rank_withhold_every_ranking(tmp_path):
    results = _blocks(10, diverged_after=set()) + _confirmations(
        {"before": 0.30, "after": 0.40, "none": 0.20}
    )
    ranked = verdict_for(results)
    assert ranked.outcome == "before" and ranked.disagreements  # it would rank, and does
    reason = "the validation rows hold one class only (Chinstrap); pass --shuffle"

    verdict = verdict_for(results, no_ranking_reason=reason)

    assert verdict.statement == f"Neither question is answered: {reason}."
    assert (verdict.bn.outcome, verdict.placement.outcome) == ("unanswered", "unanswered")
    assert not verdict.settled and verdict.disagreements == []
    write_report(tmp_path, "demo", verdict, results, "Data: demo.")
    shown = {
        "glance": "\n".join(verdict_glance(verdict)),
        "details": "\n".join(verdict_details(verdict)),
        "report": (tmp_path / "report.md").read_text(),
        "note": run_note("demo", verdict),
    }
    for where, text in shown.items():
        flat = _one_line(text).replace("`", "")
        assert "neither question is answered" in flat.lower(), where
        assert "one class only (Chinstrap); pass --shuffle" in flat, where
        for ranking in ("better", "fresh seeds", "ranks", "before - after", "before − after"):
            assert ranking not in flat, (where, ranking)
    assert outcome_label(verdict) == "not answered (10 blocks)"
