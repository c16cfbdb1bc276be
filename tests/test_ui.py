"""The MLflow UI as a person meets it: a real headless Chromium follows the link bnsearch
prints (``tests/ui_browser.py``). Skipped, saying why, where Chromium is not installed — except
under ``BNSEARCH_NO_SKIPS=1`` (``.ci/run`` sets it), where any skip fails the run."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

from tests import ui_browser

pytestmark = pytest.mark.slow


@pytest.mark.server
def test_the_printed_link_lands_on_the_runs_and_the_parent_run_shows_the_verdict_at_once(
    tiny_csv, tmp_path, cli
):
    reason = ui_browser.missing()
    if reason:
        pytest.skip(reason)
    flags = ["--data", str(tiny_csv), "--target", "label", "--epochs", "1", "--n-trials", "3"]
    study = cli("study", *flags, "--confirm-seeds", "0", "--study-name", "look", cwd=tmp_path)
    assert study.returncode == 0, study.stderr
    uri = f"sqlite:///{tmp_path}/mlruns/mlflow.db"
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("look")
    (parent,) = client.search_runs([experiment.experiment_id], "tags.`bnsearch.kind` = 'study'")

    process, link = ui_browser.start_ui("look", uri, tmp_path)
    try:
        seen = ui_browser.check(
            link, parent.info.run_name, parent.data.tags["bnsearch.verdict_text"], tmp_path / "ui"
        )
    finally:
        process.terminate()
        process.wait(timeout=30)

    path = f"/#/experiments/{experiment.experiment_id}/runs?workflowType=machine_learning"
    assert link.endswith(path) and f"http://127.0.0.1:5000{path}" in study.stdout
    assert seen.landed_on_runs
    assert seen.verdict_visible, f"the run's verdict {seen.verdict_top:.0f} px down the page"
    assert all(shot.stat().st_size > 10_000 for shot in seen.screenshots)
