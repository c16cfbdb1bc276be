"""MLflow as the study's view: back-filling it from the study's store (``sync``), failing
fast on a store that cannot be reached, and a real ``mlflow server`` paused, killed and
restarted in the middle of a study."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time

import optuna
import pytest

from bnsearch._reachable import TIMEOUT_S
from tests._mlflow_server import MlflowServer, free_port
from tests.conftest import trial_runs

METRIC_NAMES = ("loss", "accuracy", "val_loss", "val_accuracy")


def _assert_mlflow_agrees_with_optuna(
    storage: str, tracking_uri: str, name: str, epochs: int
) -> list[optuna.trial.FrozenTrial]:
    """Every COMPLETE Optuna trial has exactly one FINISHED run with its parameters and its
    full per-epoch history (each step once); no trial or study run is left RUNNING."""
    study = optuna.load_study(study_name=name, storage=storage)
    complete = [t for t in study.trials if t.state is optuna.trial.TrialState.COMPLETE]
    client, runs = trial_runs(tracking_uri, name)
    assert not [r.info.run_name for r in runs if r.info.status == "RUNNING"]
    finished: dict[str, list] = {}
    for run in runs:
        if run.info.status == "FINISHED":
            finished.setdefault(run.data.tags["bnsearch.trial_number"], []).append(run)
    assert sorted(finished) == sorted(str(t.number) for t in complete)
    for trial in complete:
        (run,) = finished[str(trial.number)]
        assert run.data.params["placement"] == trial.params["placement"]
        for metric in METRIC_NAMES:
            steps = [m.step for m in client.get_metric_history(run.info.run_id, metric)]
            assert sorted(steps) == list(range(epochs)), (trial.number, metric, steps)
    experiment = client.get_experiment_by_name(name).experiment_id
    studies = client.search_runs([experiment], "tags.`bnsearch.kind` = 'study'")
    assert studies and all(r.info.status != "RUNNING" for r in studies)
    return complete


@pytest.mark.trains
@pytest.mark.server
def test_sync_writes_runs_mlflow_missed_and_ends_abandoned_ones(tiny_csv, tmp_path, cli):
    # One block: three runs, one for each kind of gap below.
    flags = ["--data", str(tiny_csv), "--target", "label", "--epochs", "2", "--n-trials", "3"]
    flags += ["--confirm-seeds", "0", "--study-name", "gap", "--quiet"]
    assert cli("study", *flags, cwd=tmp_path).returncode == 0
    uri, storage = (
        f"sqlite:///{tmp_path}/mlruns/mlflow.db",
        f"sqlite:///{tmp_path}/mlruns/optuna.db",
    )
    client, runs = trial_runs(uri, "gap")
    # What an outage leaves: a run never written (here: deleted), a run left RUNNING
    # without its history, and the study run of a process that is gone.
    gone, open_run = runs[0], runs[1]
    client.delete_run(gone.info.run_id)
    client.create_run(
        runs[1].info.experiment_id,
        tags={**open_run.data.tags, "bnsearch.state": "RUNNING"},
    )
    client.delete_run(open_run.info.run_id)  # and MLflow went away before its params came
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], text=True,
                          capture_output=True).stdout.strip()  # fmt: skip
    orphan = client.create_run(
        runs[0].info.experiment_id,
        tags={
            "bnsearch.kind": "study",
            "bnsearch.host": socket.gethostname(),
            "bnsearch.pid": dead,
        },
    )

    result = cli("sync", "--study-name", "gap", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert "1 trial runs created, 1 completed from stored results, 1 abandoned" in result.stdout
    _assert_mlflow_agrees_with_optuna(storage, uri, "gap", epochs=2)
    assert client.get_run(orphan.info.run_id).info.status == "FAILED"
    again = cli("sync", "--study-name", "gap", cwd=tmp_path)
    assert "already agrees" in again.stdout


def test_a_run_whose_params_an_outage_cut_off_gets_them_with_its_outcome(tmp_path, monkeypatch):
    from bnsearch._reachable import RetryPolicy
    from bnsearch.tracking import MlflowTracker
    from bnsearch.tracking import _connection as tracking
    from bnsearch.trial import BNConfig, TrialResult, TrialSpec, TrialState

    monkeypatch.setattr(tracking, "MLFLOW_RETRY", RetryPolicy(delays_s=(), offline_s=0.0))
    tracker = MlflowTracker(f"sqlite:///{tmp_path}/mlflow.db", "cut")
    tracker.notify = lambda line: None
    real_log_batch = tracker.client.log_batch

    def log_batch_losing_params(run_id, params=(), **kwargs):
        if params:  # the connection drops just after create_run
            raise ConnectionError("connection reset by peer")
        return real_log_batch(run_id, params=params, **kwargs)

    monkeypatch.setattr(tracker.client, "log_batch", log_batch_losing_params)
    spec = TrialSpec(0, BNConfig(placement="after"), seed=7, block=0)
    run_id = tracker.start_trial(spec)
    assert run_id is not None  # the run exists; only its parameters are missing
    monkeypatch.setattr(tracker.client, "log_batch", real_log_batch)  # MLflow is back
    history = {"loss": [1.0, 0.5], "val_loss": [1.1, 0.6]}
    assert tracker.finish_trial(run_id, TrialResult(spec, TrialState.COMPLETE, history))

    run = tracker.client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["placement"] == "after" and run.data.params["seed"] == "7"
    assert run.data.metrics["final_val_loss"] == 0.6


def test_a_relative_sqlite_store_keeps_its_query_when_made_absolute(tmp_path, monkeypatch):
    """SQLAlchemy reads a SQLite URI's query as connection arguments (``timeout``: how long
    a write waits for another process's lock): the absolute URI the tracker writes through
    keeps it, and the store works through it."""
    from bnsearch.tracking import MlflowTracker
    from bnsearch.trial import BNConfig, TrialResult, TrialSpec, TrialState

    monkeypatch.chdir(tmp_path)
    tracker = MlflowTracker("sqlite:///stores/mlflow.db?timeout=30", "queried")
    tracker.notify = lambda line: None
    spec = TrialSpec(0, BNConfig(placement="before"), seed=3, block=0)
    run_id = tracker.start_trial(spec)  # the store opens at its first call
    assert tracker.resolved_uri == f"sqlite:///{tmp_path / 'stores' / 'mlflow.db'}?timeout=30"
    history = {"loss": [0.9], "val_loss": [0.8]}
    assert tracker.finish_trial(run_id, TrialResult(spec, TrialState.COMPLETE, history))
    assert tracker.client.get_run(run_id).data.metrics["final_val_loss"] == 0.8
    assert (tmp_path / "stores" / "mlflow.db").is_file()


@pytest.mark.trains
def test_sync_of_a_study_that_does_not_exist_names_the_ones_there(tiny_csv, tmp_path, cli):
    flags = ["--data", str(tiny_csv), "--target", "label", "--epochs", "1", "--n-trials", "3"]
    cli("study", *flags, "--confirm-seeds", "0", "--study-name", "here", "--quiet", cwd=tmp_path)
    result = cli("sync", "--study-name", "nowhere", cwd=tmp_path)
    assert result.returncode == 2
    assert "no study 'nowhere'" in result.stderr and "here" in result.stderr


def _mute_server() -> tuple[socket.socket, str]:
    """A port that accepts connections and never answers (a paused server)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    return listener, f"http://127.0.0.1:{listener.getsockname()[1]}"


@pytest.mark.parametrize("store", ["mute http", "refused postgresql"])
def test_a_tracking_store_that_does_not_answer_is_refused_by_the_probe_in_one_line(
    store, tiny_csv, tmp_path, cli
):
    """The refusal comes from the probe's one bounded wait (``TIMEOUT_S``), not from MLflow's
    own retries of minutes: the line names the probe's timeout and why it gave up. Checked by
    what the line says, not by a clock, which a busy machine would stretch."""
    listener = None
    if store == "mute http":
        listener, uri = _mute_server()
    else:
        uri = f"postgresql://bn:pw@127.0.0.1:{free_port()}/mlflow"
    try:
        result = cli(
            "study", "--data", str(tiny_csv), "--target", "label", "--tracking-uri", uri,
            "--quiet", cwd=tmp_path,
        )  # fmt: skip
    finally:
        if listener is not None:
            listener.close()
    assert result.returncode == 2
    assert "cannot use the MLflow tracking store" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    reason = "TimeoutError" if store == "mute http" else "Connection refused"
    assert f"within {TIMEOUT_S} s: {reason})" in result.stderr, result.stderr
    assert "pw" not in result.stderr
    assert not (tmp_path / "mlruns" / "optuna.db").exists()  # nothing written


def _reader(stream, lines: list[str]) -> threading.Thread:
    thread = threading.Thread(target=lambda: lines.extend(iter(stream.readline, "")), daemon=True)
    thread.start()
    return thread


def _wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


#: The outage study's trials: the first block before the pause, three blocks after it.
OUTAGE_TRIALS = 12


@pytest.mark.server
@pytest.mark.slow
def test_mlflow_server_paused_killed_and_restarted_mid_study_loses_no_trial(
    tiny_csv, tmp_path, cli
):
    folder = tmp_path / "server"
    folder.mkdir()
    server = MlflowServer(f"sqlite:///{folder / 'mlflow.db'}", folder).start()
    storage = f"sqlite:///{tmp_path}/optuna.db"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "MLFLOW_HTTP_REQUEST_TIMEOUT": "2"}
    study = subprocess.Popen(
        [
            sys.executable, "-m", "bnsearch", "study", "--data", str(tiny_csv), "--target",
            "label", "--epochs", "2", "--hidden-units", "4", "--engine", "keras", "--n-trials",
            str(OUTAGE_TRIALS), "--confirm-seeds", "0", "--study-name", "outage", "--storage",
            storage, "--tracking-uri", server.uri,
        ],  # fmt: skip
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    out, err = [], []
    readers = [_reader(study.stdout, out), _reader(study.stderr, err)]
    try:
        _wait_until(lambda: any(line.startswith("[3/3] look 1") for line in out), 240, "3 trials")
        server.signal(signal.SIGSTOP)  # paused: connections hang
        _wait_until(lambda: any("unreachable" in line for line in err), 120, "the outage notice")
        server.kill()  # killed while paused
        server = MlflowServer(server.backend_store, folder, server.port).start()  # restarted
        study.wait(timeout=400)
    finally:
        if study.poll() is None:
            study.kill()
        for reader in readers:
            reader.join(timeout=10)
    stdout, stderr = "".join(out), "".join(err)
    try:
        assert study.returncode == 0, stderr[-3000:]
        assert "training goes on" in stderr
        assert "Traceback" not in stderr
        trials = optuna.load_study(study_name="outage", storage=storage).trials
        # Nothing trained was lost or marked failed because MLflow was away.
        assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * OUTAGE_TRIALS
        # `sync` needs no process of its own (the study was the one to survive): cli.main.
        sync = cli(
            "sync", "--study-name", "outage", "--storage", storage,
            "--tracking-uri", server.uri, cwd=tmp_path,
        )  # fmt: skip
        assert sync.returncode == 0, sync.stderr[-2000:]
        complete = _assert_mlflow_agrees_with_optuna(storage, server.uri, "outage", epochs=2)
        assert len(complete) == OUTAGE_TRIALS
        assert "MLflow" in stdout + stderr
    finally:
        server.stop()


@pytest.mark.trains
def test_the_parent_run_shows_the_verdict_first_and_the_latest_run_is_marked(
    tiny_csv, tmp_path, cli
):
    flags = ["--data", str(tiny_csv), "--target", "label", "--epochs", "1", "--n-trials", "3"]
    flags += ["--confirm-seeds", "0", "--study-name", "seen"]
    first = cli("study", *flags, cwd=tmp_path)
    second = cli("study", *flags, cwd=tmp_path)
    assert first.returncode == second.returncode == 0

    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path}/mlruns/mlflow.db")
    experiment = client.get_experiment_by_name("seen")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    runs = client.search_runs(
        [experiment.experiment_id],
        "tags.`bnsearch.kind` = 'study'",
        order_by=["attributes.start_time ASC"],
    )
    assert [r.data.tags["bnsearch.latest"] for r in runs] == ["false", "true"]
    latest = runs[-1]
    assert latest.info.run_name.startswith("too few blocks (2 blocks) · study-")  # both runs
    note = latest.data.tags["mlflow.note.content"]
    assert note.startswith(f"**{latest.data.tags['bnsearch.verdict_text']}**")
    assert "python -m bnsearch report --study-name seen" in note
    link = f"#/experiments/{experiment.experiment_id}/runs?workflowType=machine_learning"
    assert link in second.stdout


@pytest.mark.trains
def test_a_moved_store_still_reads_its_artifacts(tiny_csv, tmp_path, cli):
    import shutil

    from mlflow.tracking import MlflowClient

    from bnsearch.tracking import relocate_artifacts

    first = tmp_path / "first"
    first.mkdir()
    flags = ["--data", str(tiny_csv), "--target", "label", "--epochs", "1", "--n-trials", "3"]
    assert cli("study", *flags, "--confirm-seeds", "0", "--study-name", "moved", "--quiet",
               cwd=first).returncode == 0  # fmt: skip
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.move(first / "mlruns", elsewhere / "mlruns")  # the original folder is gone
    uri = f"sqlite:///{elsewhere}/mlruns/mlflow.db"

    assert relocate_artifacts(uri) == 1
    assert relocate_artifacts(uri) == 0  # once is enough

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("moved")
    assert experiment.artifact_location.startswith((elsewhere / "mlruns").as_uri())
    (parent,) = client.search_runs([experiment.experiment_id], "tags.`bnsearch.kind` = 'study'")
    names = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert "report.md" in names
    local = client.download_artifacts(parent.info.run_id, "report.md", str(tmp_path))
    from pathlib import Path

    assert parent.data.tags["bnsearch.verdict_text"][:30] in Path(local).read_text()


def test_relocating_a_moved_study_leaves_a_sibling_study_of_a_longer_name_alone(tmp_path):
    """``artifacts/study`` moved while ``artifacts/study2`` stayed: only the first one's runs
    point at the new folder (a bare prefix match rewrote the sibling's too)."""
    from mlflow.tracking import MlflowClient

    from bnsearch.tracking import relocate_artifacts

    old, new = tmp_path / "old" / "artifacts", tmp_path / "new" / "artifacts"
    (old / "study2").mkdir(parents=True)  # still there; old/study is gone
    (new / "study").mkdir(parents=True)
    uri = f"sqlite:///{tmp_path / 'new' / 'mlflow.db'}"
    client = MlflowClient(uri)
    moved = client.create_experiment("study", artifact_location=(old / "study").as_uri())
    stayed = client.create_experiment("study2", artifact_location=(old / "study2").as_uri())
    moved_run = client.create_run(moved).info.run_id
    stayed_run = client.create_run(stayed).info.run_id

    assert relocate_artifacts(uri) == 1

    assert client.get_run(moved_run).info.artifact_uri.startswith((new / "study").as_uri() + "/")
    assert client.get_run(stayed_run).info.artifact_uri.startswith((old / "study2").as_uri() + "/")
    assert client.get_experiment(stayed).artifact_location == (old / "study2").as_uri()
