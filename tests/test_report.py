from __future__ import annotations

import dataclasses
from pathlib import Path

from bnsearch.report import write_report
from bnsearch.report._pages import PLOTS
from bnsearch.stats import analyze
from bnsearch.trial import TrialState
from tests.test_analysis import _block_results


def test_report_writes_markdown_selfcontained_html_and_nontrivial_plots(tmp_path: Path):
    results = _block_results({"none": 0.2, "before": 0.0, "after": 0.1}, 12, 0.01)
    for r in results:
        r.history = {m: [0.7, 0.6, r.history["val_loss"][0]] for m in r.history}
    verdict = analyze(results, importances={"placement": 0.6, "learning_rate": 0.4})
    files = write_report(tmp_path, "demo", verdict, results, "Data: demo.")
    names = {f.name for f in files}
    assert {"report.md", "report.html", *PLOTS} == names
    for name in PLOTS:
        data = (tmp_path / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    markdown = (tmp_path / "report.md").read_text()
    assert verdict.bn.statement in markdown and verdict.placement.statement in markdown
    assert verdict.headline in markdown and "before − after" in markdown
    page = (tmp_path / "report.html").read_text()
    assert page.count("data:image/png;base64,") == len(PLOTS)
    assert 'src="distribution.png"' not in page  # nothing left to fetch
    assert "<pre>" not in page and "| pair |" not in page  # tables are tables
    assert "<th>pair</th>" in page and "<td>before − after</td>" in page
    assert "overflow-wrap:anywhere" in page  # long verdict lines wrap


def test_run_note_states_the_verdict_interval_rule_and_each_placements_best():
    from bnsearch.report import outcome_label, run_note, summarize
    from bnsearch.stats import PlacementConfirmation

    results = _block_results({"before": 0.0, "after": 0.1, "none": 0.2}, 10, 0.01)
    best = PlacementConfirmation("before", {"placement": "before", "dropout": 0.25}, (0.4, 0.42))
    verdict = dataclasses.replace(analyze(results, until="settled"), confirmations=(best,))
    note = run_note("demo", verdict, summarize(results))
    assert note.startswith(f"**{verdict.statement}**")
    assert "anytime-valid 95% CS" in note and "10 blocks" in note
    assert "Rule: until settled" in note
    assert "| before | 10 |" in note and "0.41 ± 0.014 (2)" in note and "dropout=0.25" in note
    assert "python -m bnsearch report --study-name demo" in note
    for r in results:  # every `none` trial diverged: the table says so, not "nan"
        if r.config.placement == "none":
            r.state, r.fail_reason = TrialState.FAILED, "loss became nan at epoch 0"
    note_diverged = run_note("demo", verdict, summarize(results))
    assert "| none | 0 | none completed (10 failed, 0 pruned) |" in note_diverged
    assert "nan" not in note_diverged.split("| none | 0 |")[1].split("\n")[0]
    label = outcome_label(verdict)  # the answers first: MLflow's runs table shows the start
    assert label.startswith("BN helps · before better -0.1") and label.endswith("] · 10 blocks")


def test_the_report_and_the_run_name_carry_both_answers(tmp_path: Path):
    from bnsearch.report import outcome_label, run_note
    from bnsearch.stats import PlacementConfirmation

    results = _block_results({"before": 0.0, "after": 0.0005, "none": 0.1}, 8, 0.001)
    verdict = analyze(results, until="settled")
    confirmed = tuple(
        PlacementConfirmation(p, {"placement": p}, (m, m + 0.002))
        for p, m in (("before", 0.3), ("after", 0.31), ("none", 0.17))
    )
    verdict = dataclasses.replace(verdict, confirmations=confirmed)
    write_report(tmp_path, "demo", verdict, results, "Data: demo.")
    markdown = (tmp_path / "report.md").read_text()
    assert f"**{verdict.headline}**" in markdown
    assert f"Does BN help? {verdict.bn.statement}" in markdown
    assert f"Before or after? {verdict.placement.statement}" in markdown
    assert "closed test over the BN placements" in markdown  # the multiplicity, said
    assert "| before − none | does BN help? |" in markdown
    assert "| before − after | before or after? |" in markdown
    assert "**fresh seeds and blocks disagree:**" in markdown
    note = run_note("demo", verdict)
    assert "- Does BN help? **BN helps (`before` and `after` beat `none`)**" in note
    assert "- Before or after? **no placement effect beyond the threshold**" in note
    assert "fresh seeds and blocks disagree" in note
    label = outcome_label(verdict)
    assert label.startswith("BN helps · placement: no effect ") and label.endswith(" · 8 blocks")
    few = analyze(
        _block_results({"before": 0.0, "after": 0.1, "none": 0.2}, 2, 0.01), until="settled"
    )
    assert outcome_label(few) == "too few blocks (2 blocks)"
