"""Fixtures and helpers shared by the tests: tiny data, fresh stores, the CLI in-process and as
a real subprocess, a tiny study's config and its MLflow trial runs."""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# One TensorFlow thread per test process (the subprocesses inherit it): the suite runs two
# workers on two cores, so more threads only contend; and the work of a float32 reduction is
# then never split by how busy the machine is, so the parity tests see the same sums either way.
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
os.environ.pop("MLFLOW_TRACKING_URI", None)


@pytest.fixture(autouse=True)
def _no_tracking_uri_outlives_a_test() -> Iterator[None]:
    """``mlflow.set_tracking_uri`` (tests of MLflow's fluent API) also sets
    $MLFLOW_TRACKING_URI: left behind, it would send a later test's in-process command, which
    reads it as a user's setting, to that test's store instead of its own folder's."""
    yield
    os.environ.pop("MLFLOW_TRACKING_URI", None)


@pytest.fixture
def tiny_csv(tmp_path: Path) -> Path:
    """320 rows of the synthetic problem, standardized, written as a CSV with a header."""
    return write_tiny_csv(tmp_path)


def write_tiny_csv(folder: Path) -> Path:
    """``folder/tiny.csv``: what the ``tiny_csv`` fixture gives (for module-scoped studies)."""
    from bnsearch.data import make_synthetic

    data = make_synthetic(320, seed=3)
    x = (data.x - data.x.mean(0)) / data.x.std(0)
    path = folder / "tiny.csv"
    header = ",".join([*data.feature_names, "label"])
    rows = np.column_stack([x, data.y])
    np.savetxt(path, rows, delimiter=",", header=header, comments="", fmt="%.6g")
    return path


def stores_in(folder: Path) -> dict[str, str]:
    """A fresh Optuna storage and MLflow store in ``folder``: the MLflow store an empty one,
    made once per test process and copied (a new SQLite store's schema migrations take about
    a second; a study making its own new store is tested where that is the point: the
    default stores under ``mlruns/`` and the studies run as processes)."""
    empty_mlflow_store_at(folder / "mlflow.db")
    return {
        "storage": f"sqlite:///{folder / 'optuna.db'}",
        "tracking_uri": f"sqlite:///{folder / 'mlflow.db'}",
    }


def empty_mlflow_store_at(database: Path) -> None:
    """An empty MLflow SQLite store at ``database``: a copy of one migrated once per process,
    for a test whose subject is not the store's creation."""
    database.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_empty_mlflow_store(), database)


@functools.cache
def _empty_mlflow_store() -> Path:
    from mlflow.tracking import MlflowClient

    folder = Path(tempfile.mkdtemp(prefix="bnsearch-empty-store-"))
    atexit.register(shutil.rmtree, folder, True)
    path = folder / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def stores(tmp_path: Path) -> dict[str, str]:
    """A fresh Optuna storage and MLflow store in a temporary folder."""
    return stores_in(tmp_path)


def tiny_config(tiny_csv: Path, stores: dict[str, str], name: str, **changes: Any) -> Any:
    """A StudyConfig of a tiny, quiet study on ``tiny_csv``: 3 trials, 2 epochs, 8×8 units,
    no confirmation round; ``changes`` override any setting."""
    from bnsearch.config import StudyConfig
    from bnsearch.networks import NetworkSettings

    settings = {
        "study_name": name,
        "data": str(tiny_csv),
        "target": "label",
        "n_trials": 3,
        "confirm_seeds": 0,
        "verbose": False,
        "network": NetworkSettings(epochs=2, hidden_units=(8, 8)),
        **stores,
        **changes,
    }
    return StudyConfig(**settings)


def trial_runs(tracking_uri: str, experiment: str) -> tuple[Any, list[Any]]:
    """The MLflow client and the trial runs of a study's experiment."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    runs = client.search_runs([found.experiment_id], "tags.`bnsearch.kind` = 'trial'")
    return client, runs


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> Any:
    """Run ``python -m bnsearch ARGS`` in this process (``cli.main``) from folder ``cwd``.

    No interpreter start and no TensorFlow import per call, so error cases cost little; the
    signal handlers ``main`` installs are restored afterwards.
    """
    from bnsearch.cli import main

    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)

    def run(*args: str, cwd: Path) -> CliResult:
        monkeypatch.chdir(cwd)
        capsys.readouterr()
        code = main(list(args))
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    yield run
    for sig, handler in handlers.items():
        signal.signal(sig, handler)


def run_bnsearch(*args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run ``python -m bnsearch ARGS`` as a real process (smoke tests of the entry point)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run(
        [sys.executable, "-m", "bnsearch", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="session")
def built_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This checkout built as a wheel (``pip wheel . --no-deps``), once a session."""
    import subprocess
    import sys

    folder = tmp_path_factory.mktemp("wheel")
    root = Path(__file__).resolve().parent.parent
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(root), "--no-deps", "-q", "-w", str(folder)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = folder.glob("bnsearch-*.whl")
    return wheel


# --- in CI (`BNSEARCH_NO_SKIPS=1`, set by .ci/run) a skipped test fails the run: a check
# skipped for want of Chromium, PostgreSQL or PgBouncer is a check CI never made ---

_skipped: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and os.environ.get("BNSEARCH_NO_SKIPS") == "1":
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        _skipped.append(f"{report.nodeid}: {reason}")


def pytest_sessionfinish(session: pytest.Session) -> None:
    if _skipped and not hasattr(session.config, "workerinput"):  # the controller says it
        print(f"\nBNSEARCH_NO_SKIPS=1 but {len(_skipped)} test(s) skipped:", *_skipped, sep="\n")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


# --- the tiers: `trains`, `server`, `slow`; `-m fast` is every test marked with none of them ---

_TIER_MARKS = ("trains", "server", "slow")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark ``fast`` each test that neither trains, nor needs a server or a process, nor is
    slow: ``python -m pytest -m fast`` is the tier a developer runs after each change."""
    for item in items:
        if not any(item.get_closest_marker(mark) for mark in _TIER_MARKS):
            item.add_marker(pytest.mark.fast)


#: The test being set up or run: training is checked against its marks. Set before its
#: fixtures are made, so a module-scoped fixture that trains counts for the test that made it.
_current: list[pytest.Item] = []


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    _current[:] = [item]
    _guard_training()


def _may_train() -> None:
    item = _current[0] if _current else None
    if item is None or item.get_closest_marker("trains") or item.get_closest_marker("slow"):
        return
    raise AssertionError(
        f"{item.nodeid} trains a network: mark it @pytest.mark.trains "
        "(the fast tier, `-m fast`, runs no training)"
    )


def _guard_training() -> None:
    """A test that trains a network in this process without the ``trains`` (or ``slow``) mark
    fails at its first training call, naming the mark: the fast tier stays free of training
    because the marks cannot drift from what the tests do. Guarded: the engines' ``train``
    and Keras' ``Model.fit`` (once Keras is imported: the first test to import it inside its
    body trains unchecked, the rest are checked)."""
    from bnsearch.engines import KerasEngine, PopulationEngine

    owners: list[Any] = [KerasEngine, PopulationEngine]
    if "keras" in sys.modules:
        owners.append(sys.modules["keras"].Model)
    for owner in owners:
        name = "train" if owner in (KerasEngine, PopulationEngine) else "fit"
        method = owner.__dict__.get(name) or getattr(owner, name)
        if getattr(method, "_guarded", False):
            continue

        def guarded(*args: Any, _method: Any = method, **kwargs: Any) -> Any:
            _may_train()
            return _method(*args, **kwargs)

        guarded._guarded = True  # type: ignore[attr-defined]
        setattr(owner, name, guarded)
