from __future__ import annotations

import dataclasses
from pathlib import Path

from bnsearch.report import PLOTS, write_report
from bnsearch.stats import analyze
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
    assert verdict.statement in markdown and "before − after" in markdown
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
    assert "anytime-valid 95% interval" in note and "10 blocks" in note
    assert "Rule: until settled" in note
    assert "| before | 10 |" in note and "0.4100 ± 0.0141 (2)" in note and "dropout=0.25" in note
    assert "python -m bnsearch report --study-name demo" in note
    label = outcome_label(verdict)
    assert label.startswith("before better, -0.1") and label.endswith("], 10 blocks")
