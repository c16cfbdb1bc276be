"""The parts many workers on one study share, for the scale test and the workers benchmark.

Everything is real but the training: a PostgreSQL database whose connection limit is low
(``CONNECTION LIMIT``, enforced for the workers' own non-superuser role), Debian's
``pgbouncer`` in front of it in transaction mode with a small pool, a real ``mlflow server``
process (its access log counts the HTTP calls), and ``python -m bnsearch worker`` processes
with the stand-in engine (:mod:`tests.support.standin`: a sleep, no TensorFlow), which each
worker registers before bnsearch's CLI runs. ``tests/test_scale.py`` kills workers at random
and checks the study; :mod:`tests.support.worker_bench` measures claims and calls per trial:
:class:`Cluster`, :class:`Fleet`, :func:`audit_study`.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from bnsearch.trial import Phase, keys
from tests.support.ports import free_port
from tests.support.standin import standin_env

__all__ = [
    "ADMIN_URL",
    "PLACEMENTS",
    "THROUGH_POOLER",
    "Cluster",
    "ConnectionWatch",
    "Fleet",
    "PgBouncer",
    "StudyAudit",
    "TrackingServer",
    "WorkerRun",
    "audit_study",
    "claim_timings",
    "cpu_seconds",
    "group_cpu_seconds",
    "limited_database",
    "pgbouncer_path",
    "prepare_study_file",
    "write_study_file",
]

#: The PostgreSQL server as a superuser (creates the database and role, reads
#: ``pg_stat_activity``); ``$BNSEARCH_TEST_POSTGRES`` as in the tests.
ADMIN_URL = os.environ.get("BNSEARCH_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
PLACEMENTS = ("none", "before", "after")
#: MLflow 3's server starts a job runner (several ``huey_consumer`` processes) that bnsearch
#: never uses; on a machine of few cores they cost the workers their CPU.
QUIET_SERVER_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
#: Engine arguments of the harness's own storages (through PgBouncer in transaction mode,
#: so no server-side prepared statements: see the Optuna backend's ``engine_kwargs``).
THROUGH_POOLER = {"connect_args": {"prepare_threshold": None}}


#: Requests to this machine's own servers, never through a proxy: ``urlopen``'s shared
#: opener keeps the proxies of the environment it first saw (a proxy set for a moment, as
#: by a test of the offline path, stays in it for the life of the process).
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))
#: How uvicorn names the address it bound.
_RUNNING_ON = re.compile(r"running on http://127\.0\.0\.1:(\d+)", re.IGNORECASE)


def _wait_for_port(port: int, process: subprocess.Popen, what: str, log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{what} did not start: {log.read_text()[-2000:]}")


def _admin_engine(url: str = ADMIN_URL) -> Any:
    import sqlalchemy

    return sqlalchemy.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=_null_pool())


def _null_pool() -> Any:
    from sqlalchemy.pool import NullPool

    return NullPool


def _server(url: str) -> tuple[str, int, str]:
    from sqlalchemy.engine import make_url

    parts = make_url(url)
    return parts.host or "127.0.0.1", parts.port or 5432, parts.username or "postgres"


@dataclass(frozen=True)
class LimitedDatabase:
    """A fresh database owned by a fresh login role, both named ``name``; the database
    takes at most ``limit`` connections. Superusers are exempt from a database's
    ``CONNECTION LIMIT``, so the workers connect as the role, which is not one."""

    name: str
    limit: int


@contextlib.contextmanager
def limited_database(limit: int, admin: str = ADMIN_URL) -> Iterator[LimitedDatabase]:
    """Create the database and its role, yield them, then drop both."""
    from sqlalchemy import text

    name = f"bnsearch_scale_{uuid.uuid4().hex[:10]}"
    engine = _admin_engine(admin)
    with engine.connect() as connection:
        connection.execute(text(f'CREATE ROLE "{name}" LOGIN'))
        connection.execute(
            text(f'CREATE DATABASE "{name}" OWNER "{name}" CONNECTION LIMIT {limit}')
        )
    try:
        yield LimitedDatabase(name, limit)
    finally:
        with engine.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            connection.execute(text(f'DROP ROLE IF EXISTS "{name}"'))
        engine.dispose()


@contextlib.contextmanager
def _plain_database(admin: str = ADMIN_URL) -> Iterator[str]:
    """A fresh database (the MLflow server's backend store), dropped afterwards."""
    from sqlalchemy import text

    name = f"bnsearch_mlflow_{uuid.uuid4().hex[:10]}"
    engine = _admin_engine(admin)
    with engine.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin.rsplit("/", 1)[0] + "/" + name
    finally:
        with engine.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


def pgbouncer_path() -> str | None:
    """Debian's ``pgbouncer`` (``/usr/sbin``, often not on a user's PATH), else None."""
    return shutil.which("pgbouncer") or next(
        (p for p in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer") if os.access(p, os.X_OK)), None
    )


class PgBouncer:
    """``pgbouncer`` on its own port in transaction mode, in front of the server of
    ``admin``: ``pool_size`` server connections per database and user at most
    (``default_pool_size`` and ``max_db_connections``), any number of clients."""

    def __init__(self, folder: Path, users: Sequence[str], pool_size: int, admin: str = ADMIN_URL):
        self.folder = folder
        self.users = list(users)
        self.pool_size = pool_size
        self.host, self.server_port, self.admin_user = _server(admin)
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self._config_dir: Path | None = None

    def config(self, folder: Path) -> str:
        """The ``pgbouncer.ini`` it runs with (its user list in ``folder``)."""
        return "\n".join(
            [
                "[databases]",
                f"* = host={self.host} port={self.server_port}",
                "[pgbouncer]",
                "listen_addr = 127.0.0.1",
                f"listen_port = {self.port}",
                "unix_socket_dir =",
                "auth_type = trust",
                f"auth_file = {folder / 'users.txt'}",
                "pool_mode = transaction",
                "max_client_conn = 5000",
                f"default_pool_size = {self.pool_size}",
                "reserve_pool_size = 0",
                f"max_db_connections = {self.pool_size}",
                f"admin_users = {self.admin_user}",
                "",
            ]
        )

    def start(self) -> PgBouncer:
        path = pgbouncer_path()
        if path is None:
            raise RuntimeError("pgbouncer is not installed (apt-get install pgbouncer)")
        # pgbouncer refuses to run as root: then it runs as nobody, who must read its files,
        # so they go to a folder of their own that anyone may read (pytest's are 0700).
        self._config_dir = Path(tempfile.mkdtemp(prefix="bnsearch-pgbouncer-"))
        self._config_dir.chmod(0o755)
        users = [self.admin_user, *self.users]
        (self._config_dir / "users.txt").write_text("".join(f'"{u}" ""\n' for u in users))
        ini = self._config_dir / "pgbouncer.ini"
        ini.write_text(self.config(self._config_dir))
        for written in self._config_dir.iterdir():
            written.chmod(0o644)
        as_nobody = ["-u", "nobody"] if os.geteuid() == 0 else []
        self.folder.mkdir(parents=True, exist_ok=True)
        log = self.folder / "pgbouncer.log"
        # A port chosen here may be taken by another process before pgbouncer binds it (a
        # busy machine): pgbouncer then exits at once, and a fresh port is tried.
        for attempt in range(3):
            if attempt:
                self.port = free_port()
                ini.write_text(self.config(self._config_dir))
            with open(log, "ab") as handle:
                self.process = subprocess.Popen(
                    [path, *as_nobody, str(ini)],
                    stdout=handle,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            try:
                _wait_for_port(self.port, self.process, "pgbouncer", log)
                return self
            except RuntimeError:
                if self.process.poll() is None or attempt == 2:
                    raise
        return self

    def url(self, database: str, user: str) -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}"

    def show(self, what: str) -> list[dict[str, Any]]:
        """``SHOW <what>`` on PgBouncer's admin console (simple query protocol only)."""
        import psycopg

        with psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user=self.admin_user,
            dbname="pgbouncer",
            autocommit=True,
            cursor_factory=psycopg.ClientCursor,
        ) as connection:
            cursor = connection.execute(f"SHOW {what}")
            names = [column.name for column in cursor.description or []]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def stats(self, database: str) -> dict[str, int]:
        """Totals since start for ``database``: ``total_query_count``, ``total_xact_count``…"""
        for row in self.show("STATS"):
            if row["database"] == database:
                return {k: int(v) for k, v in row.items() if k.startswith("total_")}
        return {"total_query_count": 0, "total_xact_count": 0}

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self._config_dir is not None:
            shutil.rmtree(self._config_dir, ignore_errors=True)


class TrackingServer:
    """``mlflow server`` on ``backend_store`` with ``workers`` processes; its access log
    (stdout) tells every HTTP call it answered."""

    def __init__(self, folder: Path, backend_store: str, workers: int = 1) -> None:
        self.folder = folder
        self.backend_store = backend_store
        self.workers = workers
        self.port = 0
        self.process: subprocess.Popen | None = None

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> TrackingServer:
        """Start the server on a port it binds itself (``--port 0``: a port chosen here and
        bound later can be taken meanwhile by another process of a busy machine, and a
        health check then talks to that one) and wait until it answers ``/health``."""
        self.folder.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1",
            "--port", "0", "--backend-store-uri", self.backend_store,
            "--artifacts-destination", str(self.folder / "artifacts"),
            "--workers", str(self.workers),
        ]  # fmt: skip
        log = self.folder / "server.log"
        already = log.stat().st_size if log.exists() else 0
        with open(self.folder / "access.log", "ab") as access, open(log, "ab") as errors:
            self.process = subprocess.Popen(
                command,
                cwd=self.folder,
                env={**os.environ, **QUIET_SERVER_ENV},
                stdout=access,
                stderr=errors,
                start_new_session=True,
            )
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and self.process.poll() is None:
            if not self.port:
                # uvicorn's "Uvicorn running on http://127.0.0.1:PORT" names the port bound.
                found = _RUNNING_ON.search(log.read_bytes()[already:].decode(errors="replace"))
                self.port = int(found.group(1)) if found else 0
            if self.port:
                try:
                    _DIRECT.open(self.uri + "/health", timeout=5).close()
                    return self
                except OSError:
                    pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError("mlflow server did not start: " + self._tail("server.log"))

    def _tail(self, name: str) -> str:
        return (self.folder / name).read_text(errors="replace")[-2000:]

    def requests(self) -> Counter[str]:
        """``"POST /api/2.0/mlflow/runs/log-batch"`` → how many so far."""
        found: Counter[str] = Counter()
        text = (self.folder / "access.log").read_text(errors="replace")
        for line in text.splitlines():
            start = line.find('"')
            if start < 0:
                continue
            parts = line[start + 1 :].split(" ")
            if len(parts) >= 2 and parts[1].startswith("/api/"):
                found[f"{parts[0]} {parts[1].split('?')[0]}"] += 1
        return found

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=20)


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of process ``pid`` so far (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def group_cpu_seconds(group: int) -> float:
    """The CPU time of every live process of process group ``group`` (a server and the
    workers it forked)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group:
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


class ConnectionWatch:
    """Samples ``pg_stat_activity`` for ``database`` every ``every_s`` seconds from a
    thread (as the superuser, connected to another database): the most connections seen,
    and the CPU time the database's server processes spent meanwhile (read from
    ``/proc``, so on the database's own machine only)."""

    def __init__(self, database: str, admin: str = ADMIN_URL, every_s: float = 0.1) -> None:
        self.database = database
        self.admin = admin
        self.every_s = every_s
        self.most = 0
        self.samples = 0
        self._first: dict[int, float] = {}
        self._last: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True, name="bnsearch-watch")

    @property
    def server_cpu_s(self) -> float:
        """CPU seconds the database's backends spent while watched (a backend that began
        and ended between two samples is missed)."""
        return sum(self._last[pid] - first for pid, first in self._first.items())

    def _sample(self, connection: Any, query: Any) -> None:
        pids = [int(pid) for pid in connection.execute(query, {"name": self.database}).scalars()]
        self.most = max(self.most, len(pids))
        self.samples += 1
        for pid in pids:
            cpu = cpu_seconds(pid)
            self._first.setdefault(pid, 0.0 if self.samples > 1 else cpu)
            self._last[pid] = max(cpu, self._last.get(pid, 0.0))

    def _watch(self) -> None:
        import sqlalchemy

        engine = sqlalchemy.create_engine(self.admin, isolation_level="AUTOCOMMIT")
        query = sqlalchemy.text("SELECT pid FROM pg_stat_activity WHERE datname = :name")
        with engine.connect() as connection:
            self._sample(connection, query)
            while not self._stop.wait(self.every_s):
                self._sample(connection, query)
            self._sample(connection, query)
        engine.dispose()

    def __enter__(self) -> ConnectionWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


@dataclass
class Cluster:
    """The parts a fleet of workers shares: the limited database, PgBouncer in front of it
    and an MLflow server (on a database of its own, which the limit does not cover)."""

    folder: Path
    database: LimitedDatabase
    pooler: PgBouncer
    tracking: TrackingServer

    @property
    def storage(self) -> str:
        """The Optuna storage URL the workers use: through PgBouncer, as the role."""
        return self.pooler.url(self.database.name, self.database.name)

    @classmethod
    @contextlib.contextmanager
    def started(
        cls,
        folder: Path,
        connection_limit: int = 20,
        pool_size: int = 4,
        mlflow_workers: int = 1,
        admin: str = ADMIN_URL,
    ) -> Iterator[Cluster]:
        with contextlib.ExitStack() as stack:
            database = stack.enter_context(limited_database(connection_limit, admin))
            pooler = PgBouncer(folder / "pgbouncer", [database.name], pool_size, admin).start()
            stack.callback(pooler.stop)
            backend_store = stack.enter_context(_plain_database(admin))
            tracking = TrackingServer(folder / "mlflow", backend_store, mlflow_workers).start()
            stack.callback(tracking.stop)
            yield cls(folder, database, pooler, tracking)


def write_study_file(
    folder: Path,
    name: str,
    target_trials: int,
    epochs: int = 2,
    sampler: str = "tpe",
) -> Path:
    """A study file for stand-in workers: the whole budget (``until = "budget"``), no
    confirmation round."""
    path = folder / f"{name}.toml"
    path.write_text(
        f'name = "{name}"\ndata = "synthetic"\ntarget_trials = {target_trials}\n'
        f'engine = "standin"\nuntil = "budget"\nsampler = "{sampler}"\n'
        f"[network]\nepochs = {epochs}\nhidden_units = [4]\n"
    )
    return path


#: Runs ``python -m bnsearch`` with the stand-in engine registered, the claims' log going
#: to ``$BNSEARCH_TRACE.claims`` and, at exit, whether TensorFlow or Keras was imported to
#: ``$BNSEARCH_TRACE.modules``.
_TRACED = """
import atexit, json, logging, os, sys
trace = os.environ["BNSEARCH_TRACE"]
log = logging.getLogger("bnsearch.claims")
handler = logging.FileHandler(trace + ".claims")
handler.setFormatter(logging.Formatter("%(created).6f %(message)s"))
log.addHandler(handler)
log.setLevel(logging.DEBUG)
log.propagate = False
def modules():
    with open(trace + ".modules", "w") as out:
        json.dump({m: m in sys.modules for m in ("tensorflow", "keras")}, out)
atexit.register(modules)
sys.argv = ["bnsearch", *sys.argv[1:]]
from tests.support.standin import register
from bnsearch.cli import main
register()
sys.exit(main())
"""


@dataclass
class WorkerRun:
    """One worker process of a :class:`Fleet`."""

    index: int
    process: subprocess.Popen
    started: float
    killed: bool = False

    @property
    def trace(self) -> str:
        argv = cast("list[str]", self.process.args)  # as Fleet.start gave it: a list of str
        return str(Path(argv[-1]).parent / f"worker-{self.index}")


class Fleet:
    """``python -m bnsearch worker`` processes on one study (stand-in engine), each logging
    to ``folder/worker-<i>.log``; killed at random and started again on demand."""

    def __init__(
        self,
        folder: Path,
        study_file: Path,
        storage: str,
        tracking_uri: str,
        flags: Sequence[str] = (),
        epoch_s: float = 0.05,
    ) -> None:
        self.folder = folder
        self.study_file = study_file
        self.argv = [
            "worker", str(study_file), "--engine", "standin", "--storage", storage,
            "--tracking-uri", tracking_uri, "--quiet", *flags,
        ]  # fmt: skip
        self.env = standin_env(PYTHONUNBUFFERED="1", BNSEARCH_STANDIN_EPOCH_S=str(epoch_s))
        self.runs: list[WorkerRun] = []
        self.kills = 0

    def start(self, count: int = 1) -> None:
        for _ in range(count):
            index = len(self.runs)
            trace = self.folder / f"worker-{index}"
            env = {**self.env, "BNSEARCH_TRACE": str(trace)}
            with open(self.folder / f"worker-{index}.log", "ab") as log:
                process = subprocess.Popen(
                    [sys.executable, "-c", _TRACED, *self.argv],
                    cwd=self.folder, env=env, stdout=log, stderr=subprocess.STDOUT,
                )  # fmt: skip
            self.runs.append(WorkerRun(index, process, time.monotonic()))

    def live(self) -> list[WorkerRun]:
        return [run for run in self.runs if run.process.poll() is None]

    def kill_one(
        self, rng: random.Random, older_than_s: float = 0.0, among: set[int] | None = None
    ) -> WorkerRun | None:
        """SIGKILL a random live worker that has run ``older_than_s`` at least (and whose
        pid is in ``among``, if given)."""
        now = time.monotonic()
        candidates = [
            r
            for r in self.live()
            if now - r.started >= older_than_s and (among is None or r.process.pid in among)
        ]
        if not candidates:
            return None
        victim = rng.choice(candidates)
        victim.process.send_signal(signal.SIGKILL)
        victim.process.wait(timeout=30)
        victim.killed = True
        self.kills += 1
        return victim

    def wait(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for run in self.runs:
            run.process.wait(timeout=max(1.0, deadline - time.monotonic()))

    def stop(self) -> None:
        for run in self.live():
            run.process.kill()
            run.process.wait(timeout=30)

    def failures(self) -> list[str]:
        """The log tail of every worker that was not killed and did not exit 0."""
        return [
            f"worker {r.index} exited {r.process.returncode}: "
            + (self.folder / f"worker-{r.index}.log").read_text(errors="replace")[-3000:]
            for r in self.runs
            if not r.killed and r.process.returncode != 0
        ]

    def imported(self) -> dict[str, bool]:
        """Whether any worker that exited imported TensorFlow or Keras."""
        found = {"tensorflow": False, "keras": False}
        for path in self.folder.glob("worker-*.modules"):
            for name, present in json.loads(path.read_text()).items():
                found[name] = found.get(name, False) or present
        return found

    def exited(self) -> int:
        """How many workers wrote their exit record (exited, not killed)."""
        return len(list(self.folder.glob("worker-*.modules")))


def claim_timings(folder: Path) -> list[tuple[float, float, float, int]]:
    """Every claim the fleet in ``folder`` logged: (end time, waited s, held s, trials)."""
    found = []
    for path in folder.glob("worker-*.claims"):
        for line in path.read_text().splitlines():
            stamp, _, rest = line.partition(" claim ")
            if not rest:
                continue
            fields = dict(part.split("=") for part in rest.split())
            found.append(
                (
                    float(stamp),
                    float(fields["waited_s"]),
                    float(fields["held_s"]),
                    int(fields["trials"]),
                )
            )
    return sorted(found)


@dataclass
class StudyAudit:
    """What a shared study holds once its workers are done."""

    target: int
    complete: int
    outcomes: int  # search trials that count: complete, pruned, failed with a result
    twice: list[tuple[int, str]]  # (block, placement) with more than one outcome
    incomplete_blocks: list[int]  # blocks missing a placement's outcome
    running: int
    failed_untrained: int  # failed without a result: killed, taken over, withdrawn
    withdrawn: int
    retries: int
    trials: int
    numbers: dict[tuple[int, str], int] = field(default_factory=dict)

    @property
    def exact(self) -> bool:
        return (
            self.outcomes == self.target
            and not self.twice
            and not self.incomplete_blocks
            and self.running == 0
        )


def audit_study(storage: str, name: str, target: int) -> StudyAudit:
    """Count ``name``'s trials in ``storage``: outcomes, duplicates, whole blocks."""
    import optuna

    from bnsearch.backends.optuna import is_outcome

    rdb = optuna.storages.RDBStorage(storage, engine_kwargs=THROUGH_POOLER)
    try:
        trials = optuna.load_study(study_name=name, storage=rdb).get_trials(deepcopy=False)
    finally:
        rdb.engine.dispose()
    states = optuna.trial.TrialState
    search = [t for t in trials if t.user_attrs.get(keys.PHASE, Phase.SEARCH) == Phase.SEARCH]
    counted = [t for t in search if is_outcome(t) and not t.user_attrs.get(keys.WITHDRAWN)]
    seen: Counter[tuple[int, str]] = Counter(
        (int(t.user_attrs[keys.BLOCK]), t.params["placement"]) for t in counted
    )
    blocks = {block for block, _ in seen}
    return StudyAudit(
        target=target,
        complete=sum(t.state is states.COMPLETE for t in search),
        outcomes=len(counted),
        twice=sorted(key for key, n in seen.items() if n > 1),
        incomplete_blocks=sorted(b for b in blocks if any((b, p) not in seen for p in PLACEMENTS)),
        running=sum(t.state is states.RUNNING for t in trials),
        failed_untrained=sum(t.state is states.FAIL and not is_outcome(t) for t in trials),
        withdrawn=sum(bool(t.user_attrs.get(keys.WITHDRAWN)) for t in trials),
        retries=sum(keys.RETRIES_TRIAL in t.user_attrs for t in trials),
        trials=len(trials),
        numbers={(int(t.user_attrs[keys.BLOCK]), t.params["placement"]): t.number for t in counted},
    )


def prepare_study_file(cluster: Cluster, study_file: Path, folder: Path) -> None:
    """``python -m bnsearch prepare`` the study (through PgBouncer, like the workers), with
    the stand-in engine registered."""
    done = subprocess.run(
        [
            sys.executable, "-m", "tests.support.standin", "prepare", str(study_file),
            "--engine", "standin", "--storage", cluster.storage,
            "--tracking-uri", cluster.tracking.uri,
        ],  # fmt: skip
        cwd=folder, env=standin_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError("prepare failed: " + done.stderr[-2000:])
