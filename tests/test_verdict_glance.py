"""The verdict at a glance: what `study`, `report` and `sweep` print after the progress
lines is short, plain ASCII and at most 100 characters a line; `--verbose` adds the full
statistics; no number is printed from a diverged trial's sentinel."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from bnsearch.report import WIDTH, verdict_details, verdict_glance, write_report
from bnsearch.stats import PlacementConfirmation, analyze
from bnsearch.trial import DIVERGED_LOSS, BNConfig, TrialResult, TrialSpec, TrialState
from tests.test_analysis import _block_results

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


def assert_the_default_study_ends_with_the_verdict_at_a_glance(study_stdout: str, command) -> None:
    """What README's first command prints, and what ``report`` then reads back from its store:
    called by ``tests/test_wheel.py`` on the command run from the built wheel (one default
    study for both checks). ``command(*args)`` runs ``python -m bnsearch ARGS`` in the study's
    folder and returns ``(returncode, stdout, stderr)``."""
    summary = _after_progress(study_stdout)
    _assert_glance(summary)
    # Counted from the line that says the study settled, the progress lines of the
    # confirmation round aside, the end of the study still fits 25 lines:
    lines = study_stdout.splitlines()
    settled = next(i for i, line in enumerate(lines) if line.startswith("bnsearch: settled "))
    _assert_glance([line for line in lines[settled:] if not line.startswith("[")])
    text = "\n".join(summary)
    assert "Verdict: " in text
    for row in ("before - after", "before - none", "after - none", "confirmed best"):
        assert row in text
    for placement in ("before", "after", "none"):  # each placement's confirmed best, a row
        assert any(line.split()[:1] == [placement] and "+-" in line for line in summary)
    assert "bnsearch ui --study-name bnsearch-synthetic" in text
    for detail in ("Wilcoxon", "d_z", "importance:", "95% CI"):
        assert detail not in text

    code, plain, err = command("report", "--study-name", "bnsearch-synthetic")
    assert code == 0, err[-2000:]
    assert plain.startswith("Verdict: "), plain[:500]
    _assert_glance(plain.splitlines())
    glance = [line for line in plain.splitlines() if line.startswith("Verdict: ")]
    assert glance and glance[0] in summary  # the same verdict, read back from the store
    assert "Wilcoxon" not in plain

    code, verbose, err = command("report", "--study-name", "bnsearch-synthetic", "--verbose")
    assert code == 0, err[-2000:]
    assert verbose.isascii()
    for detail in ("Wilcoxon", "Holm", "d_z", "importance:", "95% CI", "anytime-valid CS"):
        assert detail in verbose
    assert verbose.startswith(plain.split("report written")[0])


def _tiny_study(cli, tiny_csv, folder, name, *flags):
    return cli(
        "study", "--data", str(tiny_csv), "--target", "label", "--epochs", "1",
        "--hidden-units", "4", "--n-trials", "9", "--confirm-seeds", "2",
        "--study-name", name, *flags, cwd=folder,
    )  # fmt: skip


@pytest.mark.trains
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


@pytest.mark.trains
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
    # The mean of that pair leaves the sentinel's blocks out, and says how many:
    assert "(2 blocks with a diverged trial left out)" in " ".join(text.split())
    assert "before better" in "\n".join(verdict_glance(verdict))
    _assert_glance(verdict_glance(verdict), most=12)


def test_a_run_away_seed_is_left_out_of_the_confirmed_means_and_never_printed(tmp_path):
    """A seed whose loss blew up to 1e22 without becoming NaN (so it completed): the means
    over the fresh seeds leave it out, and no terminal line or report shows 1e+22."""
    results = _block_results({"before": 0.0, "after": 0.1, "none": 0.2}, 10, 0.01)
    confirmations = (
        PlacementConfirmation("before", {"placement": "before"}, (0.30, 0.32, 0.31)),
        PlacementConfirmation("after", {"placement": "after"}, (0.41, 1e22, 0.43)),
        PlacementConfirmation("none", {"placement": "none"}, (1e22, 1e22, 1e22)),
    )
    verdict = dataclasses.replace(analyze(results, until="settled"), confirmations=confirmations)

    assert verdict.confirmations[1].mean == pytest.approx(0.42)
    assert verdict.confirmations[1].ran_away == 1 and math.isnan(verdict.confirmations[2].mean)
    glance = verdict_glance(verdict)
    write_report(tmp_path, "demo", verdict, results, "Data: demo.")
    everything = "\n".join(
        [*glance, *verdict_details(verdict), (tmp_path / "report.md").read_text()]
    )
    assert "e+2" not in everything and "1e22" not in everything
    assert "  after                 0.4200 +- 0.014 (n=2, 1 ran away)" in glance
    assert "  none                  no fresh-seed run completed" in glance
    assert "sd over 2 fresh seeds; 1 more ran away" in "\n".join(verdict_details(verdict))


def test_the_glance_has_a_row_per_question_and_one_short_notice_of_what_is_open():
    """Five placements: rows only for before - after and each placement - none (the other
    pairs are details), every line within 100 characters, and the still-open notice whole
    on one line (not cut off)."""
    effects = {"before": 0.0, "after": 0.004, "none": 0.0, "input": 0.002, "before_output": 0.0}
    verdict = analyze(_block_results(effects, 12, 0.01), until="settled")
    assert verdict.still_open

    glance = verdict_glance(verdict)

    _assert_glance(glance, most=14)
    rows = [line.split()[:3] for line in glance if " - " in line]
    assert rows == [
        ["before", "-", "after"],
        ["before", "-", "none"],
        ["after", "-", "none"],
        ["before_output", "-", "none"],
        ["input", "-", "none"],
    ]
    notes = [line for line in glance if line.startswith("Note: ")]
    assert notes == [
        "Note: not settled yet: run the study again to add blocks (more in report.md / --verbose)"
    ]
    details = verdict_details(verdict)
    assert any(line.startswith("  before - input: median ") for line in details)
    assert all(len(line) <= WIDTH and line.isascii() for line in details)
    assert any("Wilcoxon" in line for line in details)


def test_the_report_states_the_confirmation_against_the_blocks_once(tmp_path):
    """The "fresh seeds go further" discussion is one paragraph of report.md, said once;
    the terminal has only a short note pointing to it."""
    results = _block_results({"none": 0.0, "before": 0.004, "after": 0.1}, 12, 0.01)
    confirmations = tuple(
        PlacementConfirmation(p, {"placement": p}, (mean, mean + 0.001, mean + 0.002))
        for p, mean in (("before", 0.30), ("after", 0.5), ("none", 0.4))
    )
    verdict = dataclasses.replace(analyze(results, until="settled"), confirmations=confirmations)
    assert verdict.disagreements and verdict.disagreements[0].startswith("fresh seeds go further")

    write_report(tmp_path, "demo", verdict, results, "Data: demo.")

    markdown = (tmp_path / "report.md").read_text()
    paragraphs = [p for p in markdown.split("\n\n") if p.strip()]
    assert len(paragraphs) == len(set(paragraphs))
    assert markdown.count("They answer different questions") == 1
    glance = "\n".join(verdict_glance(verdict))
    assert "They answer different questions" not in glance
    assert "fresh-seed ranking of the best configurations differs" not in glance  # open first
    details = " ".join(" ".join(verdict_details(verdict)).split())  # its lines wrapped
    assert "They answer different questions" in details and "`" not in details


@pytest.mark.parametrize("until", ["settled", "budget"])
def test_each_row_shows_the_interval_that_decides_under_the_studys_rule(until):
    verdict = analyze(_blocks(10, diverged_after=set()), until=until)

    glance = verdict_glance(verdict)

    kind = "anytime-valid 95% CS" if until == "settled" else "bootstrap 95% CI"
    assert any(kind in line for line in glance), glance
    for first, second in (("before", "after"), ("before", "none"), ("after", "none")):
        pair = next(p for p in verdict.pairs if (p.first, p.second) == (first, second))
        low, high = pair.interval(until)
        (row,) = [line for line in glance if line.startswith(f"  {first} - {second} ")]
        assert f"[{low:+.4g}, {high:+.4g}]" in row, row
    rows = "\n".join(glance)
    assert "before - after" in rows and "before better" in rows
    for detail in ("Wilcoxon", "d_z", "95% CI ["):  # the details' own, not the glance's
        assert detail not in rows
    _assert_glance(glance, most=12)
