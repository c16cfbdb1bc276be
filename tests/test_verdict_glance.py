"""The verdict at a glance: what `study`, `report` and `sweep` print after the progress
lines is short, plain ASCII and at most 100 characters a line; `--verbose` adds the full
statistics; no number is printed from a diverged trial's sentinel."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bnsearch.report import WIDTH, verdict_details, verdict_glance
from bnsearch.stats import analyze
from bnsearch.trial import DIVERGED_LOSS, BNConfig, TrialResult, TrialSpec, TrialState

#: Lines a study prints while it runs: progress, its notices, the confirmation round's start.
_PROGRESS = ("[", "bnsearch: ", "confirming: ")


def _after_progress(stdout: str) -> list[str]:
    lines = stdout.splitlines()
    last = max(i for i, line in enumerate(lines) if line.startswith(_PROGRESS))
    return lines[last + 1 :]


def _assert_glance(lines: list[str], most: int = 25) -> None:
    assert 0 < len(lines) <= most, "\n".join(lines)
    for line in lines:
        assert len(line) <= WIDTH, line
        assert line.isascii(), line


def test_the_default_study_and_its_report_end_with_the_verdict_at_a_glance(tmp_path, cli):
    study = cli("study", cwd=tmp_path)

    assert study.returncode == 0, study.stderr[-2000:]
    summary = _after_progress(study.stdout)
    _assert_glance(summary)
    text = "\n".join(summary)
    assert "Verdict: " in text
    for row in ("before - after", "before - none", "after - none", "confirmed best"):
        assert row in text
    for placement in ("before", "after", "none"):  # each placement's confirmed best, a row
        assert any(line.split()[:1] == [placement] and "+-" in line for line in summary)
    assert "bnsearch ui --study-name bnsearch-synthetic" in text
    for detail in ("Wilcoxon", "d_z", "importance:", "95% CI"):
        assert detail not in text

    plain = cli("report", "--study-name", "bnsearch-synthetic", cwd=tmp_path)
    assert plain.returncode == 0, plain.stderr[-2000:]
    _assert_glance(plain.stdout.splitlines())
    glance = [line for line in plain.stdout.splitlines() if line.startswith("Verdict: ")]
    assert glance and glance[0] in summary  # the same verdict, read back from the store
    assert "Wilcoxon" not in plain.stdout

    verbose = cli("report", "--study-name", "bnsearch-synthetic", "--verbose", cwd=tmp_path)
    assert verbose.returncode == 0, verbose.stderr[-2000:]
    assert verbose.stdout.isascii()
    for detail in ("Wilcoxon", "Holm", "d_z", "importance:", "95% CI", "anytime-valid CS"):
        assert detail in verbose.stdout
    assert verbose.stdout.startswith(plain.stdout.split("report written")[0])


def _tiny_study(cli, tiny_csv, folder, name, *flags):
    return cli(
        "study", "--data", str(tiny_csv), "--target", "label", "--epochs", "1",
        "--hidden-units", "4", "--n-trials", "9", "--confirm-seeds", "2",
        "--study-name", name, *flags, cwd=folder,
    )  # fmt: skip


def test_study_verbose_adds_the_full_statistics_under_the_glance(tiny_csv, tmp_path, cli):
    short = _tiny_study(cli, tiny_csv, tmp_path, "short")
    full = _tiny_study(cli, tiny_csv, tmp_path, "full", "--verbose")

    assert short.returncode == 0 and full.returncode == 0, (
        short.stderr[-2000:] + full.stderr[-2000:]
    )
    _assert_glance(_after_progress(short.stdout))
    assert "Wilcoxon" not in short.stdout and "Full statistics:" not in short.stdout
    details = full.stdout.split("Full statistics:")[1]
    assert "Wilcoxon" in details and "d_z" in details and "best before:" in details
    assert full.stdout.isascii()


def test_sweep_prints_a_short_line_a_study_and_the_details_with_verbose(tiny_csv, tmp_path, cli):
    studies = tmp_path / "studies"
    studies.mkdir()
    (studies / "alpha.toml").write_text(
        f'name = "alpha"\ndata = "{tiny_csv}"\ntarget = "label"\ntarget_trials = 9\n'
        "confirm_seeds = 0\n[network]\nepochs = 1\nhidden_units = [4]\n"
    )

    first = cli("sweep", "studies", cwd=tmp_path)
    again = cli("sweep", "studies", "--verbose", cwd=tmp_path)

    assert first.returncode == 0 and again.returncode == 0, first.stdout + again.stdout
    lines = first.stdout.splitlines()
    _assert_glance(lines, most=12)
    assert lines[0].startswith("sweep: alpha.toml: +9 trials (9 in total), ")
    assert any(line.startswith("Verdict across datasets: ") for line in lines)
    assert "Wilcoxon" not in first.stdout
    assert again.stdout.startswith("sweep: alpha.toml: +0 trials (9 in total), ")
    assert "Wilcoxon" in again.stdout and again.stdout.isascii()


def _blocks(n_blocks: int, diverged_after: set[int]) -> list[TrialResult]:
    """Paired blocks where `before` is 0.1 better than `after` and `none`; `after` diverges
    (its loss NaN, the recorder's rule) in the blocks of ``diverged_after``."""
    rng = np.random.default_rng(0)
    results = []
    for block in range(n_blocks):
        level = rng.uniform(0.3, 0.6)
        for placement, effect in (("before", 0.0), ("after", 0.1), ("none", 0.1)):
            value = level + effect + rng.normal(0, 0.005)
            spec = TrialSpec(len(results), BNConfig(placement=placement), seed=block, block=block)
            history = {"loss": [value], "val_loss": [value], "val_accuracy": [0.5]}
            result = TrialResult(spec, TrialState.COMPLETE, history)
            if placement == "after" and block in diverged_after:
                result.state, result.fail_reason = TrialState.FAILED, "loss became nan at epoch 2"
                result.history = {m: [math.nan] for m in history}
            results.append(result)
    return results


@pytest.mark.parametrize("until", ["settled", "budget"])
def test_no_number_is_printed_from_a_diverged_trials_sentinel(until):
    verdict = analyze(_blocks(10, diverged_after={2, 5}), until=until)
    pair = next(p for p in verdict.pairs if (p.first, p.second) == ("before", "after"))
    assert min(pair.differences) <= -DIVERGED_LOSS * 0.99  # the sentinel is in the data

    lines = verdict_glance(verdict) + verdict_details(verdict)

    text = "\n".join(lines)
    assert "e+3" not in text and "e+2" not in text, text
    assert "n/a (a run-away loss)" in text  # the mean of that pair, said for what it is
    assert "before better" in "\n".join(verdict_glance(verdict))
    _assert_glance(verdict_glance(verdict), most=12)
