"""Many workers on one study through PgBouncer in transaction mode, killed at random.

Real parts only (:mod:`tests.support.cluster`, which the workers benchmark runs too):

* a fresh PostgreSQL database with ``CONNECTION LIMIT`` :data:`LIMIT`, owned by and used
  through a fresh login role that is not a superuser (superusers are exempt from a
  database's limit; the server's ``max_connections`` cannot change without a restart);
* Debian's ``pgbouncer`` on a port of its own, its config written here: ``auth_type =
  trust``, ``pool_mode = transaction``, ``max_client_conn = 5000``, ``default_pool_size``
  (and ``max_db_connections``) :data:`POOL`;
* a real ``mlflow server`` on a database of its own;
* :data:`WORKERS` ``python -m bnsearch worker --engine standin`` processes (the tests'
  stand-in engine, :mod:`tests.support.standin`, registered in each: a sleep instead of
  training, no TensorFlow; 8 in CI, ``BNSEARCH_SCALE_WORKERS`` for more), :data:`KILLS` of
  them killed with SIGKILL while they hold trials, each replaced by a new worker.

The study must end with exactly its target in whole paired blocks: no (block, placement)
twice, none missing, nothing left running, one finished MLflow run per counted trial; the
database never had more connections than the pool (well under its limit), and no worker
imported TensorFlow.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient

from bnsearch.backends.optuna import claim_lock
from bnsearch.backends.optuna._storage import engine_kwargs, retrying_storage
from tests._postgres import needs_postgres
from tests.support.cluster import (
    Cluster,
    ConnectionWatch,
    Fleet,
    PgBouncer,
    audit_study,
    claim_timings,
    limited_database,
    pgbouncer_path,
    prepare_study_file,
    write_study_file,
)

pytestmark = [
    needs_postgres,
    pytest.mark.skipif(pgbouncer_path() is None, reason="needs pgbouncer (apt-get install)"),
]

#: Workers at once; CI runs 8. ``BNSEARCH_SCALE_WORKERS=64 python -m pytest
#: tests/test_scale.py`` runs the full-size test (about ten minutes on two cores).
WORKERS = int(os.environ.get("BNSEARCH_SCALE_WORKERS", "8"))
TARGET = 3 * round(1.5 * WORKERS)  # blocks of 3, one claimed at a time: 1.5 claims per worker
KILLS = max(3, WORKERS // 8)
LIMIT = 20
POOL = 4
#: A block trains this many stand-in epochs of this many seconds (sleeps, so the same on a
#: busy machine): 3 s, which a kill's 0.25-1 s gap and a 0.25 s poll always fall within.
HOLD_EPOCHS = 6
EPOCH_S = 0.5


def _holders(storage: optuna.storages.RDBStorage, name: str) -> set[int]:
    """The pids of this machine's workers that hold a RUNNING trial of the study."""
    study = optuna.load_study(study_name=name, storage=storage)
    running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    host = socket.gethostname()
    return {
        int(worker.rsplit(":", 1)[1])
        for trial in running
        if (worker := trial.user_attrs.get("bnsearch.worker", "")).startswith(host + ":")
    }


def _kill_at_random(fleet: Fleet, storage_url: str, name: str, timeout: float) -> None:
    """Until every worker has exited: 0.25-1 s after the last kill, SIGKILL a random worker
    that holds trials (claimed or training) and start another in its place, :data:`KILLS`
    times.

    Every kill is sure to find a holder whatever the machine's speed: a killed worker's
    block goes back to the study at once (its pid is gone from this host), a live worker
    claims it and holds it for :data:`HOLD_EPOCHS` sleeps of :data:`EPOCH_S`, longer than
    the gap between kills plus a poll."""
    rng = random.Random(26)
    storage = optuna.storages.RDBStorage(
        storage_url, engine_kwargs={"connect_args": {"prepare_threshold": None}}
    )
    deadline = time.monotonic() + timeout
    next_kill = time.monotonic() + 2
    try:
        while fleet.live() and time.monotonic() < deadline:
            time.sleep(0.25)
            if fleet.kills >= KILLS or time.monotonic() < next_kill:
                continue
            if fleet.kill_one(rng, among=_holders(storage, name)) is not None:
                fleet.start(1)
                next_kill = time.monotonic() + rng.uniform(0.25, 1)
    finally:
        storage.engine.dispose()
        fleet.stop()  # any worker still running at the deadline


@pytest.mark.server
@pytest.mark.slow
def test_workers_through_pgbouncer_reach_the_target_exactly_while_killed_at_random():
    # Not pytest's tmp_path: pgbouncer runs as nobody when the tests run as root.
    folder = Path(tempfile.mkdtemp(prefix="bnsearch-scale-"))
    name = f"scale-{uuid.uuid4().hex[:8]}"
    try:
        with Cluster.started(folder, connection_limit=LIMIT, pool_size=POOL) as cluster:
            study_file = write_study_file(folder, name, TARGET, epochs=HOLD_EPOCHS)
            prepare_study_file(cluster, study_file, folder)
            fleet = Fleet(
                folder, study_file, cluster.storage, cluster.tracking.uri,
                flags=["--population", "3", "--heartbeat-interval", "1", "--grace-period", "10"],
                epoch_s=EPOCH_S,
            )  # fmt: skip
            with ConnectionWatch(cluster.database.name, every_s=0.05) as watch:
                fleet.start(WORKERS)
                _kill_at_random(fleet, cluster.storage, name, timeout=30 * WORKERS + 240)
            assert not fleet.failures(), fleet.failures()
            assert fleet.kills == KILLS, "not every kill found a worker holding trials"
            audit = audit_study(cluster.storage, name, TARGET)
            assert audit.exact, audit
            assert audit.complete == TARGET
            assert audit.retries >= 1, "no killed worker's trial was retried"
            # Every worker that exited (not killed) did without TensorFlow or Keras.
            assert fleet.exited() == len(fleet.runs) - KILLS
            assert fleet.imported() == {"tensorflow": False, "keras": False}
            assert 0 < watch.most <= POOL < LIMIT, watch.most
            assert watch.samples > 100
            assert sum(trials for *_, trials in claim_timings(folder)) >= TARGET
            _assert_one_finished_run_per_trial(cluster.tracking.uri, name, audit.numbers)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _assert_one_finished_run_per_trial(uri: str, name: str, numbers: dict) -> None:
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(name)
    runs = client.search_runs(
        [experiment.experiment_id], "tags.`bnsearch.kind` = 'trial'", max_results=5000
    )
    assert all(run.info.status in ("FINISHED", "FAILED") for run in runs)
    finished: dict[str, int] = {}
    for run in runs:
        if run.info.status == "FINISHED":
            number = run.data.tags["bnsearch.trial_number"]
            finished[number] = finished.get(number, 0) + 1
    assert finished == {str(number): 1 for number in numbers.values()}


@pytest.fixture
def tiny_pool() -> Iterator[str]:
    """A limited database behind PgBouncer in transaction mode with a pool of 2 server
    connections: the fewest a claim needs (its lock's and one for its storage calls)."""
    folder = Path(tempfile.mkdtemp(prefix="bnsearch-pool-"))
    try:
        with limited_database(LIMIT) as database:
            pooler = PgBouncer(folder, [database.name], pool_size=2).start()
            try:
                yield pooler.url(database.name, database.name)
            finally:
                pooler.stop()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _in_threads(count: int, work, timeout: float = 60) -> list:
    """``work(i)`` in ``count`` threads started together; their results (or errors)."""
    results: list = [None] * count
    start = threading.Barrier(count)

    def run(index: int) -> None:
        start.wait()
        try:
            results[index] = work(index)
        except Exception as error:  # noqa: BLE001 - reported by the test
            results[index] = error

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    assert not any(thread.is_alive() for thread in threads), "deadlocked behind the pooler"
    return results


def test_many_storages_open_at_once_through_a_pool_of_two(tiny_pool: str):
    """Optuna's own schema check holds a connection while it opens a second; six at once
    behind a pool of two would each hold one and wait for another until PgBouncer gives up
    (``query_wait_timeout``, two minutes). bnsearch's storage checks one at a time."""
    optuna.storages.RDBStorage(tiny_pool, engine_kwargs=engine_kwargs(tiny_pool)).engine.dispose()

    def open_storage(_: int) -> str:
        storage = retrying_storage()(tiny_pool, engine_kwargs=engine_kwargs(tiny_pool))
        try:
            return storage.get_current_version()
        finally:
            storage.engine.dispose()

    versions = _in_threads(6, open_storage)
    assert len(set(versions)) == 1 and isinstance(versions[0], str), versions


def test_claims_take_turns_through_a_pool_of_two_with_many_waiting(tiny_pool: str):
    """Eight claims at once, each reading the study under the lock (a second server
    connection): waiters blocked in the server would take the pool's two connections and
    the holder could never read; bnsearch's waiters hold none between tries."""
    storage = retrying_storage()(tiny_pool, engine_kwargs=engine_kwargs(tiny_pool))
    study = optuna.create_study(storage=storage, study_name="turns")
    inside, most, lock = [0], [0], threading.Lock()

    def claim(_: int) -> int:
        with claim_lock(study):
            with lock:
                inside[0] += 1
                most[0] = max(most[0], inside[0])
            study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL))
            found = len(study.get_trials(deepcopy=False))
            with lock:
                inside[0] -= 1
        return found

    try:
        found = _in_threads(8, claim)
    finally:
        storage.engine.dispose()
    assert most[0] == 1, "two claims held the lock at once"
    assert sorted(found) == list(range(1, 9)), found  # each saw every claim before its own
