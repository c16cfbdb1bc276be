from __future__ import annotations

import re
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import run_bnsearch
from tests.support.standin import standin_study


def test_study_help_documents_every_setting_with_its_real_default(tmp_path: Path, cli, capsys):
    from bnsearch.config import SETTINGS

    with pytest.raises(SystemExit) as exit_info:
        cli("study", "--help", cwd=tmp_path)
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for item in SETTINGS:
        assert item.flag in text
    assert "(default 0.01)" in text and "(default tpe)" in text and "(default 64,64)" in text
    assert "256 with the population engine, 16 with the keras engine" in text


def test_every_command_of_the_table_parses_and_names_its_runner():
    from bnsearch.cli import COMMANDS, build_parser

    parser = build_parser()
    minimal = {
        "sweep": ["studies"],
        "report": ["--study-name", "x"],
        "replay": ["--trial", "1"],
        "examples": ["copies"],
    }
    for command in COMMANDS:
        args = parser.parse_args([command.name, *minimal.get(command.name, [])])
        assert args.run is command.run


@pytest.mark.trains
@pytest.mark.server
def test_tiny_end_to_end_study_uses_the_default_stores_under_mlruns(tiny_csv: Path, tmp_path):
    result = run_bnsearch(
        "study", "--data", str(tiny_csv), "--target", "label", "--n-trials", "3",
        "--epochs", "2", "--hidden-units", "8,8", "--study-name", "e2e", "--confirm-seeds", "1",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "[3/3] confirm" in result.stdout and "Verdict" in result.stdout
    assert "python -m bnsearch ui" in result.stdout
    assert (tmp_path / "mlruns" / "mlflow.db").exists()
    study = optuna.load_study(study_name="e2e", storage=f"sqlite:///{tmp_path}/mlruns/optuna.db")
    assert len(study.trials) == 6
    client = MlflowClient(f"sqlite:///{tmp_path}/mlruns/mlflow.db")
    experiment = client.get_experiment_by_name("e2e")
    assert experiment.artifact_location.startswith("file://")
    assert len(client.search_runs([experiment.experiment_id])) == 7  # parent + 6 trials


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--data", "missing.csv", "--target", "y"], ["missing.csv", "does not exist"]),
        (["--placements", "before,sideways"], ["sideways", "placement"]),
        (["--hidden-units", "a,b"], ["--hidden-units"]),
        (["--n-trials", "-1"], ["n_trials", "non-negative"]),
        (["--timeout", "nan"], ["timeout", "positive"]),
        (["--threshold", "-0.5"], ["threshold", ">= 0"]),
        (["--validation-split", "1.5"], ["validation_split"]),
        (["--data", "sklearn:nope"], ["sklearn:nope"]),
    ],
)
def test_bad_input_exits_2_with_one_line_and_no_traceback(tmp_path: Path, args, words, cli):
    result = cli("study", *args, cwd=tmp_path)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.startswith("bnsearch: error:")]
    assert len(lines) == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in lines[0]


def _tiny_study(cli, tiny_csv: Path, folder: Path, *flags: str):
    """``study`` on the tiny CSV from ``folder``: one epoch, no confirmation round, quiet."""
    return cli(
        "study", "--data", str(tiny_csv), "--target", "label", "--epochs", "1",
        "--confirm-seeds", "0", "--quiet", *flags, cwd=folder,
    )  # fmt: skip


@pytest.mark.trains
def test_report_rebuilds_the_verdict_from_the_optuna_storage(tiny_csv: Path, tmp_path: Path, cli):
    study = _tiny_study(
        cli, tiny_csv, tmp_path, "--n-trials", "9", "--hidden-units", "8,8", "--study-name", "rep"
    )
    assert study.returncode == 0, study.stderr[-2000:]
    result = cli("report", "--study-name", "rep", "--out", "out", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Verdict: " in result.stdout and "3 blocks" in result.stdout
    page = (tmp_path / "out" / "report.html").read_text()
    assert "data:image/png;base64," in page
    # The study's parent run and the report's run record the verdict the same way.
    client = MlflowClient(f"sqlite:///{tmp_path}/mlruns/mlflow.db")
    experiment = client.get_experiment_by_name("rep").experiment_id
    runs = {r.data.tags["bnsearch.kind"]: r for r in client.search_runs([experiment])}
    study_run, report_run = runs["study"], runs["report"]
    for key in ("verdict.n_blocks", "verdict.median_difference", "verdict.ci_low"):
        assert report_run.data.metrics[key] == study_run.data.metrics[key]
    assert report_run.data.metrics["verdict.n_blocks"] == 3
    assert report_run.data.tags["bnsearch.verdict"] == study_run.data.tags["bnsearch.verdict"]
    missing = cli("report", "--study-name", "nope", cwd=tmp_path)
    assert missing.returncode == 2 and "no study 'nope'" in missing.stderr


def _study_file(folder: Path, name: str, data: Path, target: int = 3) -> Path:
    path = folder / f"{name}.toml"
    path.write_text(
        f'name = "{name}"\ndata = "{data}"\ntarget = "label"\ntarget_trials = {target}\n'
        'confirm_seeds = 0\nengine = "keras"\n[network]\nepochs = 1\nhidden_units = [4]\n'
    )
    return path


@pytest.mark.trains
def test_sweep_runs_each_study_once_then_reports_up_to_date(tiny_csv: Path, tmp_path: Path, cli):
    studies = tmp_path / "studies"
    studies.mkdir()
    _study_file(studies, "alpha", tiny_csv)
    first = cli("sweep", str(studies), cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    lines = [line for line in first.stdout.splitlines() if line.startswith("sweep:")]
    assert len(lines) == 1 and "+3 trials" in lines[0]
    assert re.fullmatch(r"sweep: alpha\.toml: \+3 trials \(3 in total\), \d+ s: .+", lines[0])
    (studies / "broken.toml").write_text("n_trails = 3\n")
    second = cli("sweep", str(studies), cwd=tmp_path)
    assert second.returncode == 2
    assert "broken.toml: error (exit 2)" in second.stdout and "n_trails" in second.stdout
    assert "alpha.toml" in second.stdout and "+0 trials (3 in total)" in second.stdout


def test_a_second_run_of_a_locked_study_exits_3(tiny_csv: Path, tmp_path: Path, cli):
    import fcntl

    path = _study_file(tmp_path, "locked", tiny_csv)
    (tmp_path / "mlruns" / "locks").mkdir(parents=True)
    with open(tmp_path / "mlruns" / "locks" / "locked.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        result = cli("study", str(path), cwd=tmp_path)
    assert result.returncode == 3
    assert "being run by another bnsearch process" in result.stderr


CANARY = "Canary-pw-7731"


@pytest.mark.parametrize(
    "flags",
    [
        ["--storage", f"postgresql://bnsearch:{CANARY}@127.0.0.1:1/optuna"],
        ["--tracking-uri", f"bogus://bnsearch:{CANARY}@127.0.0.1:1/"],
        ["--storage", f"postgresql://127.0.0.1:1/optuna?password={CANARY}"],
    ],
)
def test_a_password_in_a_store_url_never_reaches_the_output(tmp_path: Path, cli, flags):
    result = cli("study", *flags, "--n-trials", "1", "--quiet", cwd=tmp_path)
    assert result.returncode == 2
    assert CANARY not in result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("bnsearch: error:")]
    assert len(errors) == 1 and "***" in errors[0], result.stderr[-2000:]


@pytest.mark.trains
def test_one_study_that_crashes_is_its_own_sweep_line_and_the_others_still_run(
    tiny_csv: Path, tmp_path: Path, cli, monkeypatch
):
    import bnsearch.study

    studies = tmp_path / "studies"
    studies.mkdir()
    _study_file(studies, "alpha", tiny_csv)
    _study_file(studies, "boom", tiny_csv)
    (studies / "widths.toml").write_text('[network]\nhidden_units = ["x"]\n')
    real = bnsearch.study.run_study

    def crash_boom(config, stream=None):
        if config.study_name == "boom":
            raise RuntimeError("simulated crash inside the study")
        return real(config, stream)

    monkeypatch.setattr(bnsearch.study, "run_study", crash_boom)
    result = cli("sweep", str(studies), cwd=tmp_path)
    lines = {
        line.split(":")[1].strip(): line
        for line in result.stdout.splitlines()
        if line.startswith("sweep: ")
    }
    assert "+3 trials" in lines["alpha.toml"]
    assert "error (exit 1): unexpected RuntimeError: simulated crash" in lines["boom.toml"]
    assert "error (exit 2)" in lines["widths.toml"] and "list of int" in lines["widths.toml"]
    assert result.returncode == 2 and "Traceback" not in result.stdout + result.stderr


@pytest.mark.trains
def test_a_study_leaves_no_report_folder_behind_in_the_temp_dir(
    tiny_csv: Path, tmp_path: Path, cli, monkeypatch
):
    import tempfile

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    result = _tiny_study(
        cli, tiny_csv, tmp_path, "--n-trials", "3", "--engine", "keras", "--hidden-units", "4"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert not list(scratch.glob("bnsearch-report-*"))
    client = MlflowClient(f"sqlite:///{tmp_path}/mlruns/mlflow.db")
    experiment = client.get_experiment_by_name("bnsearch-tiny").experiment_id
    runs = client.search_runs([experiment], "tags.`bnsearch.kind` = 'study'")
    parent = runs[0]
    assert "report.md" in {a.path for a in client.list_artifacts(parent.info.run_id)}


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("name", [".", "..", "a/b"])
def test_a_study_name_that_is_a_path_is_refused_and_nothing_is_written_or_removed(
    name: str, tiny_csv: Path, tmp_path: Path, cli
):
    (tmp_path / "mlruns" / "keras_tuner" / "other").mkdir(parents=True)
    (tmp_path / "mlruns" / "mlflow.db").write_bytes(b"another study's runs")
    (tmp_path / "mlruns" / "keras_tuner" / "other" / "results.jsonl").write_text("{}\n")
    before = _tree(tmp_path)
    commands = [
        ["study", "--data", str(tiny_csv), "--target", "label", "--backend", "keras-tuner",
         "--allow-changed-study", "--study-name", name],
        ["study", "--data", str(tiny_csv), "--target", "label", "--study-name", name],
        ["report", "--study-name", name],
        ["sync", "--study-name", name, "--backend", "keras-tuner"],
    ]  # fmt: skip
    for args in commands:
        result = cli(*args, cwd=tmp_path)
        assert result.returncode == 2, (args, result.stderr)
        assert "--study-name" in result.stderr and len(result.stderr.splitlines()) == 1
    assert _tree(tmp_path) == before  # the store is what it was; nothing was added


@pytest.mark.parametrize(
    ("flag", "name", "words"),
    [
        ("--storage", "o.db", ["Optuna storage folder", "Not a directory", "--storage"]),
        ("--tracking-uri", "m.db", ["MLflow store folder", "Not a directory", "--tracking-uri"]),
    ],
)
def test_a_store_under_a_regular_file_is_one_line_not_a_traceback(
    tiny_csv: Path, tmp_path: Path, cli, flag: str, name: str, words: list[str]
):
    url = f"sqlite:///{tiny_csv.name}/x/{name}"  # its folder would lie inside the CSV file
    result = _tiny_study(cli, tiny_csv, tmp_path, "--n-trials", "3", flag, url)
    assert result.returncode == 2 and "Traceback" not in result.stdout + result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("bnsearch: error:") and f"{tiny_csv.name}/x" in line
    for word in words:
        assert word in line


def test_an_mlruns_file_in_the_way_is_one_line_and_left_alone(tiny_csv: Path, tmp_path: Path, cli):
    (tmp_path / "mlruns").write_text("not a folder")
    args = ("study", "--data", str(tiny_csv), "--target", "label", "--epochs", "1")
    result = cli(*args, "--n-trials", "3", cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "mlruns must be a folder" in lines[0], result.stderr
    assert (tmp_path / "mlruns").read_text() == "not a folder"


def test_a_folder_given_as_a_study_file_says_to_sweep_it(tmp_path: Path, cli):
    (tmp_path / "studies").mkdir()
    result = cli("study", "studies", cwd=tmp_path)
    assert result.returncode == 2
    assert "is a folder, not a study file" in result.stderr
    assert "bnsearch sweep studies" in result.stderr


def test_the_default_study_name_drops_the_whole_data_suffix():
    from bnsearch.config import StudyConfig

    assert StudyConfig(data="x/churn.csv.gz").resolved_study_name == "bnsearch-churn"
    assert StudyConfig(data="sklearn:iris").resolved_study_name == "bnsearch-iris"
    assert StudyConfig(data="t.parquet").resolved_study_name == "bnsearch-t"


@pytest.mark.trains
def test_features_scaled_orders_of_magnitude_apart_are_named_once_before_training(
    tmp_path: Path, cli
):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 3)) * np.array([1.0, 1e3, 1e-2])
    frame = pd.DataFrame(x, columns=["a", "b", "c"]).assign(label=(x[:, 0] > 0).astype(int))
    frame.to_csv(tmp_path / "scaled.csv", index=False)
    # One confirmation seed: a confirmation round still trains after the search (the notice
    # is named once across both), with 3 trials rather than the default 15.
    args = ("study", "--data", "scaled.csv", "--target", "label", "--epochs", "1",
            "--confirm-seeds", "1")  # fmt: skip
    raw = cli(*args, "--n-trials", "3", "--until", "budget", cwd=tmp_path)
    assert raw.returncode == 0, raw.stderr
    notices = [line for line in raw.stdout.splitlines() if "measure input scaling" in line]
    assert len(notices) == 1 and "e+04x without --standardize" in notices[0]
    assert raw.stdout.index(notices[0]) < raw.stdout.index("trial 0")
    # The notice is decided from the data before any training (the study's first lines), so
    # a study of no trials shows whether --standardize silences it.
    scaled = cli(*args, "--n-trials", "0", "--standardize", "--study-name", "standardized",
                 cwd=tmp_path)  # fmt: skip
    assert scaled.returncode == 0 and "measure input scaling" not in scaled.stdout
    assert "fingerprint" in scaled.stdout  # the data line the notice would follow was printed


@pytest.mark.server
def test_report_rebuilds_the_verdict_under_another_metric_threshold_and_rule(
    tiny_csv: Path, tmp_path: Path, cli
):
    done, storage, tracking = standin_study(tmp_path, tiny_csv, 0, "--n-trials", "12")
    assert done.returncode == 0, done.stderr[-2000:]
    stores = ("--study-name", "standin", "--storage", storage, "--tracking-uri", tracking)

    def report(*flags: str) -> str:
        shown = cli("report", *stores, "--out", str(tmp_path / "report"), *flags, cwd=tmp_path)
        assert shown.returncode == 0, shown.stderr
        return " ".join(shown.stdout.split())  # its lines unwrapped

    default = report()
    assert "final val_loss, lower is better; threshold 0.01" in default
    assert "anytime-valid 95% CS" in default  # the study's rule: until settled
    wide = report("--threshold", "1000", "--until", "budget")
    assert wide.startswith(
        "Verdict: no effect of BN beyond the threshold; no placement effect beyond the threshold"
    )
    assert "fixed budget" in wide and "bootstrap 95% CI" in wide
    accuracy = report("--metric", "val_accuracy")
    assert "final val_accuracy, higher is better" in accuracy
