"""The verdict across a sweep's studies: at the end of ``sweep`` and from ``report --sweep``,
logged to its own MLflow run with its report."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient


def _study_file(folder, name, csv, seed):
    (folder / f"{name}.toml").write_text(
        f'name = "{name}"\ndata = "{csv}"\ntarget = "label"\ntarget_trials = 9\n'
        f"confirm_seeds = 0\nseed = {seed}\n[network]\nepochs = 1\nhidden_units = [4]\n"
    )


@pytest.mark.trains
def test_sweep_ends_with_the_verdict_across_its_studies_in_its_own_mlflow_run(
    tiny_csv, tmp_path, cli
):
    studies = tmp_path / "studies"
    studies.mkdir()
    for seed, name in enumerate(("alpha", "beta")):
        _study_file(studies, name, tiny_csv, seed)

    result = cli("sweep", "studies", cwd=tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "Verdict across datasets: " in result.stdout
    assert "2 datasets; mean rank" in result.stdout
    client = MlflowClient(f"sqlite:///{tmp_path}/mlruns/mlflow.db")
    experiment = client.get_experiment_by_name("sweep-studies")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.tags["bnsearch.kind"] == "sweep-report"
    assert run.data.tags["bnsearch.verdict_text"].startswith(("no ", "placements "))
    assert run.data.metrics["datasets"] == 2
    assert {"mean_rank.before", "mean_rank.after", "mean_rank.none", "friedman_p"} <= set(
        run.data.metrics
    )
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"report.md", "report.html", "critical_difference.png"} <= artifacts


@pytest.mark.trains
def test_report_sweep_writes_the_table_and_leaves_out_studies_not_run_yet(tiny_csv, tmp_path, cli):
    studies = tmp_path / "studies"
    studies.mkdir()
    for seed, name in enumerate(("alpha", "beta")):
        _study_file(studies, name, tiny_csv, seed)
        assert cli("study", str(studies / f"{name}.toml"), "--quiet", cwd=tmp_path).returncode == 0
    _study_file(studies, "gamma", tiny_csv, 2)  # never run

    result = cli("report", "--sweep", "studies", "--out", "across", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert "gamma: not run yet; left out" in result.stdout
    report = (tmp_path / "across" / "report.md").read_text()
    assert "| alpha |" in report and "| beta |" in report and "| gamma |" not in report
    assert "![critical difference](critical_difference.png)" in report
    assert (tmp_path / "across" / "critical_difference.png").exists()


def test_report_needs_a_study_name_or_a_sweep_folder(tmp_path, cli):
    result = cli("report", cwd=tmp_path)
    assert result.returncode == 2
    assert "--study-name NAME (one study) or --sweep FOLDER" in result.stderr
