"""Real signals sent to a running ``python -m bnsearch study``, then a resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient

from tests._in_flight import wait_for_a_batch_in_flight
from tests.support.standin import standin_env

pytestmark = pytest.mark.slow


def _args(tiny_csv: Path, *extra: str) -> list[str]:
    return [
        "study", "--data", str(tiny_csv), "--target", "label", "--epochs", "2",
        "--hidden-units", "8,8", "--study-name", "faults", "--engine", "keras",
        "--confirm-seeds", "0", *extra,
    ]  # fmt: skip


def _start(tmp_path: Path, tiny_csv: Path, *extra: str) -> subprocess.Popen:
    """The study as a real process, for the signal sent to it. Its stderr goes to a file
    (:func:`_stderr`): while a test reads stdout line by line, a child that filled an
    unread stderr pipe would block, and the test with it."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    with open(tmp_path / "study.stderr", "w") as stderr:
        return subprocess.Popen(
            [sys.executable, "-m", "bnsearch", *_args(tiny_csv, *extra)],
            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True,
        )  # fmt: skip


def _stderr(tmp_path: Path) -> str:
    """What the process of :func:`_start` wrote to stderr."""
    return (tmp_path / "study.stderr").read_text()


def _start_standin(tmp_path: Path, tiny_csv: Path, name: str) -> subprocess.Popen:
    """A 3-trial study ``name`` as a real process on the stand-in engine (``python -m
    tests.support.standin``: bnsearch's CLI with it registered; no TensorFlow)."""
    env = standin_env(TF_CPP_MIN_LOG_LEVEL="3", BNSEARCH_STANDIN_EPOCH_S="0")
    env.pop("MLFLOW_TRACKING_URI", None)
    args = [
        "study", "--data", str(tiny_csv), "--target", "label", "--epochs", "1",
        "--study-name", name, "--engine", "standin", "--confirm-seeds", "0", "--n-trials", "3",
    ]  # fmt: skip
    return subprocess.Popen(
        [sys.executable, "-m", "tests.support.standin", *args],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _wait_for_trials(process: subprocess.Popen, done: int, timeout: float = 240) -> str:
    """Read progress lines until ``done`` trials finished; return what was read."""
    seen, deadline = "", time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        seen += line
        if line.startswith(f"[{done:>2}/") or line.startswith(f"[{done}/"):
            return seen
    raise AssertionError(f"never saw {done} trials finish:\n{seen}")


def _stores(tmp_path: Path):
    study = optuna.load_study(study_name="faults", storage=f"sqlite:///{tmp_path}/mlruns/optuna.db")
    client = MlflowClient(f"sqlite:///{tmp_path}/mlruns/mlflow.db")
    experiment = client.get_experiment_by_name("faults")
    runs = client.search_runs([experiment.experiment_id])
    return study, runs


def _assert_nothing_left_running(tmp_path: Path) -> None:
    study, runs = _stores(tmp_path)
    assert not [t for t in study.trials if t.state is optuna.trial.TrialState.RUNNING]
    assert not [r for r in runs if r.info.status == "RUNNING"]


@pytest.mark.server
def test_ctrl_c_fails_the_trials_in_flight_and_a_rerun_resumes(tmp_path, tiny_csv, cli):
    process = _start(tmp_path, tiny_csv, "--n-trials", "30")
    # The first block is told (its three progress lines come after it trained); once a run
    # of the next block is started in MLflow, that block is training: in flight.
    _wait_for_trials(process, 3)
    wait_for_a_batch_in_flight(process, tmp_path / "mlruns")
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=120)
    stderr = _stderr(tmp_path)
    assert process.returncode == 130, stderr[-2000:]
    assert "interrupted" in stderr
    _assert_nothing_left_running(tmp_path)
    study, runs = _stores(tmp_path)
    interrupted = {t.number for t in study.trials if t.state is optuna.trial.TrialState.FAIL}
    assert interrupted
    parent = [r for r in runs if r.data.tags.get("bnsearch.kind") == "study"]
    assert [r.info.status for r in parent] == ["KILLED"]
    assert any(r.info.status == "KILLED" for r in runs if r.data.tags["bnsearch.kind"] == "trial")

    rerun = cli(*_args(tiny_csv, "--n-trials", "3"), cwd=tmp_path)  # the rerun: in this process
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    _assert_nothing_left_running(tmp_path)
    study, runs = _stores(tmp_path)
    # The rerun retries each interrupted trial once (same params, seed and block), so every
    # paired block ends complete, then adds new blocks up to --n-trials.
    retried = [t for t in study.trials if "bnsearch.retries_trial" in t.user_attrs]
    assert sorted(t.user_attrs["bnsearch.retries_trial"] for t in retried) == sorted(interrupted)
    for trial in retried:
        original = study.trials[trial.user_attrs["bnsearch.retries_trial"]]
        assert trial.params == original.params
        assert trial.user_attrs["seed"] == original.user_attrs["seed"]
    blocks: dict[int, list[str]] = {}
    for trial in study.trials:
        if trial.state is optuna.trial.TrialState.COMPLETE:
            blocks.setdefault(trial.user_attrs["bnsearch.block"], []).append(
                trial.params["placement"]
            )
    assert all(sorted(p) == ["after", "before", "none"] for p in blocks.values())
    trial_runs = [r for r in runs if r.data.tags["bnsearch.kind"] == "trial"]
    assert len(trial_runs) == len(study.trials)  # no duplicated and no lost trial


@pytest.mark.server
def test_kill_9_leaves_trials_that_the_next_run_closes(tmp_path, tiny_csv, cli):
    beat = ("--heartbeat-interval", "1", "--grace-period", "2")
    process = _start(tmp_path, tiny_csv, "--n-trials", "30", *beat)
    # Killed while a block trains (as the Ctrl-C test above), not in the moment between
    # two blocks when nothing is RUNNING, however busy the machine.
    _wait_for_trials(process, 3)
    wait_for_a_batch_in_flight(process, tmp_path / "mlruns")
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)
    study, runs = _stores(tmp_path)
    left = [t for t in study.trials if t.state is optuna.trial.TrialState.RUNNING]
    assert left, "SIGKILL should leave RUNNING trials behind"
    time.sleep(3)

    rerun = cli(*_args(tiny_csv, "--n-trials", "3", *beat), cwd=tmp_path)  # in this process
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert f"closed {len(left)} trial(s)" in rerun.stdout
    _assert_nothing_left_running(tmp_path)
    study, runs = _stores(tmp_path)
    by_run = {r.info.run_id: r for r in runs}
    for trial in left:
        closed = study.trials[trial.number]
        assert closed.state is optuna.trial.TrialState.FAIL
        run = by_run[trial.user_attrs["mlflow_run_id"]]
        assert run.info.status == "FAILED" and "stale" in run.data.tags["bnsearch.fail_reason"]
    complete = [t for t in study.trials if t.state is optuna.trial.TrialState.COMPLETE]
    assert len(complete) >= 3 + 1  # the new block reached its target
    parents = [r for r in runs if r.data.tags.get("bnsearch.kind") == "study"]
    assert sorted(r.info.status for r in parents) == ["FAILED", "FINISHED"]


@pytest.mark.server
@pytest.mark.parametrize("tuner", ["random", "hyperband"])
def test_ctrl_c_stops_a_keras_tuner_study_and_ends_its_runs(tmp_path, tiny_csv, tuner):
    # SIGINT to bnsearch alone (as `kill -INT` sends it). Random search trains in bnsearch's
    # process; Hyperband's own search runs in a child process, to which bnsearch passes the
    # signal on. Either way the runs in flight end as KILLED.
    process = _start(
        tmp_path, tiny_csv, "--n-trials", "30", "--backend", "keras-tuner", "--tuner", tuner
    )
    _wait_for_trials(process, 1)
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=120)
    assert process.returncode == 130, _stderr(tmp_path)[-2000:]
    client = MlflowClient(f"sqlite:///{tmp_path}/mlruns/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("faults").experiment_id])
    assert not [r for r in runs if r.info.status == "RUNNING"]
    assert [r.info.status for r in runs if r.data.tags["bnsearch.kind"] == "study"] == ["KILLED"]
    assert len([r for r in runs if r.data.tags["bnsearch.kind"] == "trial"]) < 30


@pytest.mark.server
def test_studies_started_together_in_one_folder_share_its_new_stores(tmp_path, tiny_csv):
    # Each process creating the folder's new SQLite stores at once would collide in their
    # schema migrations (Optuna's and MLflow's): one opens a store at a time. The studies
    # train on the tests' stand-in engine (no TensorFlow to import, no training): what is
    # tested is the stores, and without the seconds of TensorFlow's import before them the
    # three processes reach the new stores closer together.
    names = ("one", "two", "three")
    studies = [_start_standin(tmp_path, tiny_csv, name) for name in names]
    for process in studies:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err[-2000:]
    client = MlflowClient(f"sqlite:///{tmp_path}/mlruns/mlflow.db")
    for name in names:
        study = optuna.load_study(study_name=name, storage=f"sqlite:///{tmp_path}/mlruns/optuna.db")
        assert len(study.trials) == 3
        experiment = client.get_experiment_by_name(name)
        runs = client.search_runs([experiment.experiment_id], "tags.`bnsearch.kind` = 'trial'")
        assert len(runs) == 3
