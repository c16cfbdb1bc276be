"""The verdict across a sweep's studies: at the end of ``sweep`` and from ``report --sweep``,
logged to its own MLflow run with its report."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import CliResult, trial_runs, write_tiny_csv
from tests.support.standin import standin_env


def _study_file(folder, name, csv, seed):
    (folder / f"{name}.toml").write_text(
        f'name = "{name}"\ndata = "{csv}"\ntarget = "label"\ntarget_trials = 9\n'
        f"confirm_seeds = 0\nseed = {seed}\n[network]\nepochs = 1\nhidden_units = [4]\n"
    )


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, CliResult]:
    """A folder whose studies ``alpha`` and ``beta`` (the tiny CSV, two seeds) were run by
    one ``sweep studies``, and what that sweep printed: the two tests read different things
    from the one sweep."""
    from bnsearch.cli import main

    folder = tmp_path_factory.mktemp("sweep")
    studies = folder / "studies"
    studies.mkdir()
    tiny_csv = write_tiny_csv(folder)
    for seed, name in enumerate(("alpha", "beta")):
        _study_file(studies, name, tiny_csv, seed)
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    out, err = io.StringIO(), io.StringIO()
    here = os.getcwd()
    os.chdir(folder)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["sweep", "studies"])
    finally:
        os.chdir(here)
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    return folder, CliResult(code, out.getvalue(), err.getvalue())


@pytest.mark.trains
def test_sweep_ends_with_the_verdict_across_its_studies_in_its_own_mlflow_run(swept):
    tmp_path, result = swept

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
def test_report_sweep_writes_the_table_and_leaves_out_studies_not_run_yet(swept, tmp_path, cli):
    """On a copy of the swept folder (its stores hold alpha and beta), with a study file
    ``gamma`` added that was never run."""
    shutil.copytree(swept[0], tmp_path, dirs_exist_ok=True)
    _study_file(tmp_path / "studies", "gamma", tmp_path / "tiny.csv", 2)  # never run

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


@pytest.mark.server
def test_sweep_storage_and_tracking_uri_put_every_study_in_the_stores_given(tmp_path):
    """``sweep studies --storage ... --tracking-uri ...`` as typed (on the tests' stand-in
    engine): both studies in those stores, no store under ``mlruns/``."""
    studies = tmp_path / "studies"
    studies.mkdir()
    tiny_csv = write_tiny_csv(tmp_path)
    for seed, name in enumerate(("alpha", "beta")):
        _study_file(studies, name, tiny_csv, seed)
        with (studies / f"{name}.toml").open("r+") as file:
            text = file.read().replace("[network]", 'engine = "standin"\n[network]')
            file.seek(0)
            file.write(text)
    storage, tracking = f"sqlite:///{tmp_path}/given.db", f"sqlite:///{tmp_path}/given-mlflow.db"
    done = subprocess.run(
        [
            sys.executable, "-m", "tests.support.standin", "sweep", "studies",
            "--storage", storage, "--tracking-uri", tracking,
        ],  # fmt: skip
        cwd=tmp_path, env=standin_env(BNSEARCH_STANDIN_EPOCH_S="0"),
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    for name in ("alpha", "beta"):
        assert len(optuna.load_study(study_name=name, storage=storage).trials) == 9
        assert len(trial_runs(tracking, name)[1]) == 9
    # Under mlruns/ only the per-machine study locks (study.study_lock), whatever the stores.
    left = {p.relative_to(tmp_path).as_posix() for p in tmp_path.glob("mlruns/**/*.*")}
    assert left == {"mlruns/locks/alpha.lock", "mlruns/locks/beta.lock"}
