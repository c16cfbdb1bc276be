"""Several workers on one Optuna storage in PostgreSQL and one MLflow tracking server."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.slow

POSTGRES = os.environ.get("BNSEARCH_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def _postgres_available() -> bool:
    try:
        import sqlalchemy

        sqlalchemy.create_engine(POSTGRES, connect_args={"connect_timeout": 3}).connect().close()
    except Exception:  # noqa: BLE001 - any failure means the same: no server to test against
        return False
    return True


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mlflow-server")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--backend-store-uri",
            f"sqlite:///{folder}/mlflow.db",
            "--artifacts-destination",
            str(folder / "artifacts"),
            "--workers",
            "1",
        ],  # fmt: skip
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.5)
    else:
        server.kill()
        pytest.fail("mlflow server did not start")
    yield uri
    os.killpg(server.pid, signal.SIGTERM)
    server.wait(timeout=30)


def _worker(tmp_path: Path, study_file: Path, uri: str) -> subprocess.Popen:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [
            sys.executable, "-m", "bnsearch", "worker", str(study_file), "--storage", POSTGRES,
            "--tracking-uri", uri, "--heartbeat-interval", "1", "--grace-period", "3",
        ],  # fmt: skip
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


@pytest.mark.skipif(not _postgres_available(), reason="needs PostgreSQL at " + POSTGRES)
def test_workers_share_a_study_and_a_killed_worker_is_cleaned_up(
    tmp_path: Path, tiny_csv: Path, mlflow_server: str
):
    name = f"workers-{uuid.uuid4().hex[:8]}"
    study_file = tmp_path / "shared.toml"
    study_file.write_text(
        f'name = "{name}"\ndata = "{tiny_csv}"\ntarget = "label"\ntarget_trials = 9\n'
        'engine = "keras"\n[network]\nepochs = 2\nhidden_units = [4]\n'
    )
    doomed = _worker(tmp_path, study_file, mlflow_server)
    survivor = _worker(tmp_path, study_file, mlflow_server)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:  # kill the first worker once it is mid-block
        line = doomed.stdout.readline()
        if not line or line.lstrip("[ ").startswith("1/"):
            break
    assert doomed.poll() is None, doomed.stderr.read()[-2000:]
    doomed.send_signal(signal.SIGKILL)
    doomed.communicate(timeout=60)
    _, stderr = survivor.communicate(timeout=400)
    assert survivor.returncode == 0, stderr[-2000:]
    time.sleep(4)  # past the grace period: the next worker closes what the dead one left
    closer = _worker(tmp_path, study_file, mlflow_server)
    stdout, stderr = closer.communicate(timeout=300)
    assert closer.returncode == 0, stderr[-2000:]
    # It fails the dead worker's trials, and makes them up so the study reaches its target.
    assert "closed" in stdout

    study = optuna.load_study(study_name=name, storage=POSTGRES)
    states = [t.state for t in study.trials]
    assert optuna.trial.TrialState.RUNNING not in states
    assert states.count(optuna.trial.TrialState.FAIL) >= 1  # the killed worker's trials
    complete = [t for t in study.trials if t.state is optuna.trial.TrialState.COMPLETE]
    assert len(complete) >= 9
    blocks: dict[int, list] = {}
    for trial in study.trials:
        if "bnsearch.block" in trial.user_attrs:
            blocks.setdefault(trial.user_attrs["bnsearch.block"], []).append(trial)
    for members in blocks.values():  # each worker trained whole blocks
        assert sorted(t.params["placement"] for t in members) == ["after", "before", "none"]
    client = MlflowClient(mlflow_server)
    experiment = client.get_experiment_by_name(name)
    runs = client.search_runs([experiment.experiment_id], "tags.`bnsearch.kind` = 'trial'")
    assert not [r for r in runs if r.info.status == "RUNNING"]
    assert len(runs) == len(study.trials)
    optuna.delete_study(study_name=name, storage=POSTGRES)
