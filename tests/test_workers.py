"""Several workers on one Optuna storage in PostgreSQL and one MLflow tracking server
backed by PostgreSQL; each test gets a fresh Optuna database, dropped afterwards, and an
experiment of its own (the study's unique name) on the module's one MLflow server.

The two-workers test's workers train on the Keras engine; the fault tests' (a worker killed,
connections cut) run the stand-in engine, a sleep in place of training (``_worker``)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient

from bnsearch.backends.optuna import stored_result
from tests._mlflow_server import MlflowServer
from tests._postgres import fresh_database, needs_postgres
from tests.support.standin import standin_env

pytestmark = pytest.mark.slow

#: Two paired blocks: one for each of two workers. The kill test keeps a third, so the
#: doomed worker still finds one to hold when the survivor is quicker off the mark.
TARGET = 6
KILL_TARGET = 9
#: Seconds a stand-in trial's epoch sleeps: about a tiny Keras epoch, so a trial is held
#: (claimed, "training") long enough to be killed or cut mid-way, as a trained one is.
STANDIN_EPOCH_S = "0.5"


#: The worker processes a test started: killed after it, so a test that failed waiting on
#: one does not leave it training (and its database in use) through the rest of the suite.
_STARTED: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def _no_worker_outlives_its_test() -> Iterator[None]:
    yield
    while _STARTED:
        process = _STARTED.pop()
        if process.poll() is None:
            process.kill()
            process.communicate()


@pytest.fixture
def optuna_database() -> Iterator[str]:
    yield from fresh_database()


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory) -> Iterator[str]:
    """One server (and its fresh database) for the module: each test's study has a unique
    name, so its experiment and runs are its own, and the assertions read only those."""
    folder = tmp_path_factory.mktemp("mlflow-server")
    for backend_store in fresh_database():
        server = MlflowServer(backend_store, folder).start()
        try:
            yield server.uri
        finally:
            server.stop()


def _worker(
    study_file: Path, storage: str, uri: str, cwd: Path, standin: bool = False
) -> subprocess.Popen:
    """``bnsearch worker`` as a process of its own. ``standin``: on the stand-in engine
    (:mod:`tests.support.standin`), each trial sleeping :data:`STANDIN_EPOCH_S` an epoch instead
    of training, one at a time as on the Keras engine (``--population 1``), in a process that
    never imports TensorFlow; for the fault tests, whose subject is the claims, heartbeats and
    stores (the real database, server and MLflow runs with per-epoch metrics), not training."""
    quiet = {"TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}
    env, module, engine = {**os.environ, **quiet}, ["bnsearch"], []
    if standin:
        env = standin_env(**quiet, BNSEARCH_STANDIN_EPOCH_S=STANDIN_EPOCH_S)
        module, engine = ["tests.support.standin"], ["--engine", "standin", "--population", "1"]
    process = subprocess.Popen(
        [
            sys.executable, "-m", *module, "worker", str(study_file), *engine, "--storage",
            storage, "--tracking-uri", uri, "--heartbeat-interval", "1", "--grace-period", "30",
        ],  # fmt: skip
        cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    _STARTED.append(process)
    return process


def _study_file(tmp_path: Path, tiny_csv: Path, target: int = TARGET) -> tuple[str, Path]:
    name = f"workers-{uuid.uuid4().hex[:8]}"
    study_file = tmp_path / "shared.toml"
    study_file.write_text(
        f'name = "{name}"\ndata = "{tiny_csv}"\ntarget = "label"\ntarget_trials = {target}\n'
        'engine = "keras"\n[network]\nepochs = 2\nhidden_units = [4]\n'
    )
    return name, study_file


def _prepare(cli, study_file: Path, storage: str, uri: str, cwd: Path) -> None:
    """``bnsearch prepare`` in this process (``cli.main``): the workers are the processes."""
    prepare = cli(
        "prepare", str(study_file), "--storage", storage, "--tracking-uri", uri,
        "--heartbeat-interval", "1", "--grace-period", "30", cwd=cwd,
    )  # fmt: skip
    assert prepare.returncode == 0, prepare.stderr[-2000:]
    assert "ready" in prepare.stdout


def _assert_study_complete(
    name: str, storage: str, uri: str, target: int = TARGET
) -> list[optuna.trial.FrozenTrial]:
    """Exactly ``target`` completed search trials, none evaluated twice, whole paired blocks,
    and exactly one finished MLflow child run (params + per-epoch metrics) per trial."""
    study = optuna.load_study(study_name=name, storage=storage)
    states = [t.state for t in study.trials]
    assert optuna.trial.TrialState.RUNNING not in states
    complete = [t for t in study.trials if t.state is optuna.trial.TrialState.COMPLETE]
    assert len(complete) == target, [(t.number, t.state.name, t.user_attrs) for t in study.trials]
    evaluated = [(t.user_attrs["bnsearch.block"], t.params["placement"]) for t in complete]
    assert len(set(evaluated)) == len(evaluated), "a (block, placement) was evaluated twice"
    blocks: dict[int, list[str]] = {}
    for block, placement in evaluated:
        blocks.setdefault(block, []).append(placement)
    for placements in blocks.values():
        assert sorted(placements) == ["after", "before", "none"]
    client = MlflowClient(uri)
    experiments = [e for e in client.search_experiments() if e.name == name]
    assert len(experiments) == 1
    runs = client.search_runs([experiments[0].experiment_id], "tags.`bnsearch.kind` = 'trial'")
    left = [(r.data.tags, r.info.start_time) for r in runs if r.info.status == "RUNNING"]
    assert not left, (left, [(t.number, t.state, t.user_attrs) for t in study.trials])
    by_trial: dict[str, list] = {}
    for run in runs:
        by_trial.setdefault(run.data.tags["bnsearch.trial_number"], []).append(run)
    for trial in complete:
        (run,) = by_trial[str(trial.number)]
        assert run.info.status == "FINISHED"
        assert run.data.params["placement"] == trial.params["placement"]
        history = client.get_metric_history(run.info.run_id, "val_loss")
        assert [m.step for m in history] == [0, 1]
    return study.trials


@pytest.mark.server
@needs_postgres
def test_two_workers_reach_exactly_the_target_with_one_run_per_trial(
    tmp_path: Path, tiny_csv: Path, optuna_database: str, mlflow_server: str, cli
):
    name, study_file = _study_file(tmp_path, tiny_csv)
    _prepare(cli, study_file, optuna_database, mlflow_server, tmp_path)
    workers = [_worker(study_file, optuna_database, mlflow_server, tmp_path) for _ in range(2)]
    verdicts = 0
    for worker in workers:
        stdout, stderr = worker.communicate(timeout=400)
        assert worker.returncode == 0, stderr[-2000:]
        # A worker that starts after the other has claimed every block has nothing to do.
        assert "Verdict: " in stdout or "nothing to do" in stdout, stdout[-2000:]
        verdicts += "Verdict: " in stdout
    assert verdicts >= 1
    trials = _assert_study_complete(name, optuna_database, mlflow_server)
    assert len(trials) == TARGET  # nothing failed, nothing surplus
    # ... and not for want of something to rank: the finished study has importances.
    from bnsearch.backends import read_study
    from bnsearch.cli import build_parser, config_from_args

    args = build_parser().parse_args(
        ["report", "--study-name", name, "--storage", optuna_database,
         "--tracking-uri", mlflow_server]
    )  # fmt: skip
    assert "placement" in read_study(config_from_args(args)).importances()


@pytest.mark.server
@needs_postgres
def test_a_worker_killed_mid_study_is_retried_and_the_target_still_reached_exactly(
    tmp_path: Path, tiny_csv: Path, optuna_database: str, mlflow_server: str, cli
):
    name, study_file = _study_file(tmp_path, tiny_csv, KILL_TARGET)
    _prepare(cli, study_file, optuna_database, mlflow_server, tmp_path)
    # The survivor starts once the doomed worker holds trials: started together, a survivor
    # that imports faster could claim every block before the doomed worker held one.
    doomed = _worker(study_file, optuna_database, mlflow_server, tmp_path, standin=True)
    storage = optuna.storages.RDBStorage(optuna_database)
    deadline = time.monotonic() + 240
    doomed_id = f"{socket.gethostname()}:{doomed.pid}"
    doomed_running = False
    # Kill it while it holds trials (claimed, or training), whenever that comes first.
    while time.monotonic() < deadline and not doomed_running and doomed.poll() is None:
        time.sleep(0.2)
        trials = optuna.load_study(study_name=name, storage=storage).trials
        doomed_running = any(
            t.state is optuna.trial.TrialState.RUNNING
            and t.user_attrs.get("bnsearch.worker") == doomed_id
            for t in trials
        )
    assert doomed_running, "the doomed worker never held a running trial"
    assert doomed.poll() is None, doomed.stderr.read()[-2000:]
    doomed.send_signal(signal.SIGKILL)
    doomed.communicate(timeout=60)
    survivor = _worker(study_file, optuna_database, mlflow_server, tmp_path, standin=True)
    stdout, stderr = survivor.communicate(timeout=400)
    assert survivor.returncode == 0, stderr[-2000:]
    trials = _assert_study_complete(name, optuna_database, mlflow_server, KILL_TARGET)
    failed = [t for t in trials if t.state is optuna.trial.TrialState.FAIL]
    assert failed and all(
        t.user_attrs.get("bnsearch.worker", doomed_id) == doomed_id for t in failed
    )
    assert "closed" in stdout  # the survivor found the dead worker's trials itself
    retried = [
        t.user_attrs["bnsearch.retries_trial"]
        for t in trials
        if "bnsearch.retries_trial" in t.user_attrs
    ]
    # each failed trial that belonged to a block was retried once (one killed before its
    # block was recorded on it has no block to complete)
    assert sorted(retried) == sorted(t.number for t in failed if "bnsearch.block" in t.user_attrs)
    client = MlflowClient(mlflow_server)
    experiment = client.get_experiment_by_name(name)
    runs = client.search_runs([experiment.experiment_id], "tags.`bnsearch.kind` = 'trial'")
    # The dead worker's runs ended FAILED, not left RUNNING (a trial it claimed but had not
    # yet started a run for has none).
    assert len(runs) <= len(trials)
    assert all(r.info.status in ("FINISHED", "FAILED") for r in runs)


def _terminate_connections(database: str, stop: threading.Event, killed: list[int]) -> None:
    """Every half second, ``pg_terminate_backend`` every other connection to ``database`` (the
    shared Optuna storage: the workers' pooled, claim-lock and heartbeat connections).

    After three rounds that cut something with no trial completed since, the next round waits
    for a completed trial. On a busy machine a claim can outlast half a second, and cutting
    every try for ever would test the machine's speed, not the recovery: a real outage ends.
    """
    import sqlalchemy

    terminate = sqlalchemy.text(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    completed = sqlalchemy.text("SELECT count(*) FROM trials WHERE state = 'COMPLETE'")
    engine = sqlalchemy.create_engine(database, isolation_level="AUTOCOMMIT")
    seen, rounds_without_progress = -1, 0
    with engine.connect() as connection:
        while not stop.wait(0.5):
            done = connection.execute(completed).scalar_one()
            if done != seen:
                seen, rounds_without_progress = done, 0
            if rounds_without_progress >= 3:
                continue
            cut = sum(1 for ok in connection.execute(terminate).scalars() if ok)
            killed.extend([1] * cut)
            rounds_without_progress += cut > 0
    engine.dispose()


@pytest.mark.server
@needs_postgres
def test_connections_terminated_mid_study_lose_nothing_and_the_target_is_reached_exactly(
    tmp_path: Path, tiny_csv: Path, optuna_database: str, mlflow_server: str, cli
):
    name, study_file = _study_file(tmp_path, tiny_csv)
    _prepare(cli, study_file, optuna_database, mlflow_server, tmp_path)
    stop, killed = threading.Event(), []
    terminator = threading.Thread(
        target=_terminate_connections, args=(optuna_database, stop, killed), daemon=True
    )
    terminator.start()
    workers = [
        _worker(study_file, optuna_database, mlflow_server, tmp_path, standin=True),
        _worker(study_file, optuna_database, mlflow_server, tmp_path, standin=True),
    ]
    try:
        for worker in workers:
            _, stderr = worker.communicate(timeout=400)
            assert worker.returncode == 0, stderr[-2000:]
            assert "Traceback" not in stderr
    finally:
        stop.set()
        terminator.join(timeout=30)
    assert killed, "the fault was never injected"
    trials = _assert_study_complete(name, optuna_database, mlflow_server)
    # Nothing trained was lost: a trial can only have failed untrained (no result), either
    # withdrawn from a claim whose lock connection was cut (made again under a fresh lock)
    # or retried in its block.
    retried = {t.user_attrs.get("bnsearch.retries_trial") for t in trials}
    for trial in trials:
        if trial.state is optuna.trial.TrialState.FAIL:
            assert stored_result(trial) is None
            assert trial.user_attrs.get("bnsearch.withdrawn") or trial.number in retried
