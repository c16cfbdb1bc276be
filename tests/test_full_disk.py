"""A disk that fills up mid-study, for real: a small tmpfs under the stores, filled while
``python -m bnsearch study`` runs, then freed and the same command run again (issue #23).

Where ``mount`` is refused (not root, a container without the capability), the tmpfs tests
are skipped, saying so; a file-size limit (``RLIMIT_FSIZE``, what a full disk or a quota
looks like to a process: its writes are refused) set in the study's own process is tested
everywhere, and stands in for them there.
"""

from __future__ import annotations

import errno
import os
import re
import resource
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest

from bnsearch.errors import StoreFullError, full_disk, full_disk_message, naming_full_disk
from tests.conftest import write_tiny_csv

STUDY = "full"
TARGET = 24  # search trials: 4 batches of 2 blocks
#: The tmpfs tests' target: 3 batches. The disk fills once the first is in; the second
#: (MLflow's disk alone: told whole to Optuna) is the last the first run may keep.
TARGET_ON_DISK = 18
PLACEMENTS = ["after", "before", "none"]
#: The one line the user reads (the mount point, then the store).
FULL_LINE = re.compile(
    r"^bnsearch: error: no space left on (?P<place>\S+) holding the (?P<store>Optuna storage|"
    r"MLflow tracking store) \S+: free space and run the same command again"
)


# --- the exception chain, without a disk -------------------------------------------------


def test_a_full_disk_is_found_through_the_exception_chain():
    import sqlalchemy.exc

    def chained(inner: BaseException) -> BaseException:
        try:
            try:
                raise inner
            except BaseException as error:
                raise sqlalchemy.exc.OperationalError("UPDATE trials", {}, error) from error
        except sqlalchemy.exc.OperationalError as error:
            try:
                raise optuna.exceptions.StorageInternalError("commit failed") from error
            except optuna.exceptions.StorageInternalError as outer:
                return outer

    assert full_disk(chained(sqlite3.OperationalError("database or disk is full"))) == "no space"
    assert full_disk(OSError(errno.ENOSPC, "No space left on device")) == "no space"
    assert full_disk(OSError(errno.EDQUOT, "Disk quota exceeded")) == "quota"
    assert full_disk(OSError(errno.EROFS, "Read-only file system")) == "read-only"
    readonly = sqlite3.OperationalError("attempt to write a readonly database")
    assert full_disk(chained(readonly)) == "read-only"
    # MLflow's own wording of the same fault, through its autoflush.
    text = "(raised as a result of Query-invoked autoflush; ...) (sqlite3.OperationalError) "
    assert full_disk(RuntimeError(text + "database or disk is full")) == "no space"
    assert full_disk(chained(sqlite3.OperationalError("database is locked"))) is None
    assert full_disk(ValueError("a mistake")) is None


def test_the_line_names_the_mount_point_and_the_store(tmp_path):
    error = OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "x.db"))
    line = full_disk_message(error, "the Optuna storage sqlite:///x.db", "sqlite:///x.db")
    assert line is not None and line.startswith("no space left on /")
    assert "holding the Optuna storage sqlite:///x.db: free space and run the same" in line
    remote = full_disk_message(OSError(errno.ENOSPC, "full"), "S", "http://h:5000")
    assert remote is not None and remote.startswith("no space left on the server's disk")
    full = pytest.raises(StoreFullError, match="holding the report folder r")
    with full, naming_full_disk("the report folder r", tmp_path):
        raise OSError(errno.ENOSPC, "No space left on device")
    with pytest.raises(ValueError), naming_full_disk("the report folder r", tmp_path):
        raise ValueError("not a disk")


# --- a real disk filling up mid-study --------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 24 MiB tmpfs at ``tmp_path/disk``, unmounted afterwards; skipped where mounting
    is refused."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.environ.get("BNSEARCH_TEST_NO_MOUNT"):
        pytest.skip("BNSEARCH_TEST_NO_MOUNT is set: the file-size limit test stands in")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(disk)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"mount -t tmpfs refused ({mounted.stderr.strip()}); see the RLIMIT test")
    try:
        yield disk
    finally:
        if subprocess.run(["umount", str(disk)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def _args(data: Path, *extra: str, target: int = TARGET) -> list[str]:
    """The study's arguments (``python -m bnsearch ARGS``)."""
    return [
        "study", "--data", str(data), "--target", "label", "--epochs", "2",
        "--hidden-units", "8,8", "--population", "6", "--confirm-seeds", "0",
        "--until", "budget", "--target-trials", str(target), "--study-name", STUDY, *extra,
    ]  # fmt: skip


def _command(data: Path, *extra: str, target: int = TARGET) -> list[str]:
    """The study as a real process's command line."""
    return [sys.executable, "-m", "bnsearch", *_args(data, *extra, target=target)]


def _rerun(
    cli: Callable[..., Any], cwd: Path, data: Path, *extra: str, target: int = TARGET
) -> None:
    """The same command run again once space is freed: it must finish (in this process; the
    fault it meets is over, so no second TensorFlow start-up)."""
    done = cli(*_args(data, *extra, target=target), cwd=cwd)
    assert done.returncode == 0, done.stderr[-3000:]


def _env() -> dict[str, str]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def _run_and_fill(
    command: list[str], cwd: Path, fill: Callable[[], None], after_lines: int = 6
) -> tuple[int, str, str]:
    """Run ``command``; call ``fill`` once ``after_lines`` progress lines are out (the
    first batch is in the study). Returns the exit code, stdout and stderr."""
    process = subprocess.Popen(
        command, cwd=cwd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    errors: list[str] = []
    reader = threading.Thread(target=lambda: errors.append(process.stderr.read()), daemon=True)
    reader.start()
    out, lines = [], 0
    for line in process.stdout:
        out.append(line)
        if line.startswith("[") and " training " not in line:  # a trial's line
            lines += 1
            if lines == after_lines:
                fill()
    process.wait(timeout=300)
    reader.join(timeout=60)
    return process.returncode, "".join(out), "".join(errors)


def _fill(disk: Path) -> Callable[[], None]:
    """Take every free byte of ``disk`` with one file."""

    def fill() -> None:
        # Zeros until the disk refuses, in ever smaller pieces (the study writes meanwhile).
        with open(disk / "filler", "wb", buffering=0) as handle:
            for size in (1 << 20, 1 << 16, 1 << 12, 1 << 9):
                chunk = bytes(size)
                try:
                    while handle.write(chunk):
                        pass
                except OSError as error:
                    if error.errno != errno.ENOSPC:
                        raise

    return fill


def _study(storage: str) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.load_study(study_name=STUDY, storage=storage)


def _assert_one_full_disk_line(code: int, stdout: str, stderr: str, stores: tuple[str, ...]) -> str:
    """Exit 2, no traceback, at most 3 lines on stderr, one of them the full-disk line
    naming one of ``stores``; that line."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == 2, f"exit {code}\n{stderr[-3000:]}\n{stdout[-2000:]}"
    assert "Traceback" not in stderr and "ERROR mlflow" not in stderr, stderr[-3000:]
    assert 1 <= len(lines) <= 3, stderr
    found = [FULL_LINE.match(line) for line in lines]
    matched = [m for m in found if m is not None and m["store"] in stores]
    assert matched, stderr
    return matched[0].string


def _completed(study: optuna.Study) -> dict[int, float]:
    done = optuna.trial.TrialState.COMPLETE
    return {t.number: t.value for t in study.trials if t.state is done}


def _assert_resumed_whole(
    study: optuna.Study, before: dict[int, float], target: int = TARGET
) -> None:
    """No RUNNING trial, every paired block whole, the target reached, nothing lost."""
    trials = study.trials
    assert not [t.number for t in trials if t.state is optuna.trial.TrialState.RUNNING]
    blocks: dict[int, list[str]] = {}
    for trial in trials:
        if trial.state is optuna.trial.TrialState.COMPLETE:
            blocks.setdefault(trial.user_attrs["bnsearch.block"], []).append(
                trial.params["placement"]
            )
    assert all(sorted(p) == PLACEMENTS for p in blocks.values()), blocks
    assert sum(len(p) for p in blocks.values()) == target
    after = _completed(study)
    assert {n: after.get(n) for n in before} == before  # 0 trained results lost


def _assert_mlflow_level(tracking_uri: str, study: optuna.Study) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(STUDY)
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    assert not [r.info.run_id for r in runs if r.info.status == "RUNNING"]
    finished: dict[str, int] = {}
    for run in runs:
        if run.data.tags.get("bnsearch.kind") == "trial" and run.info.status == "FINISHED":
            number = run.data.tags["bnsearch.trial_number"]
            finished[number] = finished.get(number, 0) + 1
    assert {str(n): 1 for n in _completed(study)} == finished


def _sync(cli: Callable[..., Any], cwd: Path, *extra: str) -> None:
    """``python -m bnsearch sync`` (in this process: no second TensorFlow start-up)."""
    done = cli("sync", "--study-name", STUDY, *extra, cwd=cwd)
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.server
@pytest.mark.slow
def test_both_stores_on_a_disk_that_fills_mid_study_stop_in_one_line_and_resume(
    tmp_path, small_disk, cli
):
    data = write_tiny_csv(tmp_path)
    command = _command(data, target=TARGET_ON_DISK)
    storage = f"sqlite:///{small_disk}/mlruns/optuna.db"

    code, stdout, stderr = _run_and_fill(command, small_disk, _fill(small_disk))
    line = _assert_one_full_disk_line(
        code, stdout, stderr, ("Optuna storage", "MLflow tracking store")
    )
    assert str(small_disk) in line
    (small_disk / "filler").unlink()  # space freed
    before = _completed(_study(storage))
    assert 0 < len(before) < TARGET_ON_DISK

    _rerun(cli, small_disk, data, target=TARGET_ON_DISK)
    study = _study(storage)
    _assert_resumed_whole(study, before, TARGET_ON_DISK)
    _sync(cli, small_disk)
    _assert_mlflow_level(f"sqlite:///{small_disk}/mlruns/mlflow.db", study)


@pytest.mark.server
@pytest.mark.slow
def test_only_the_mlflow_store_on_a_full_disk_stops_after_the_batch_and_resumes(
    tmp_path, small_disk, cli
):
    data = write_tiny_csv(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    tracking = f"sqlite:///{small_disk}/mlflow.db"
    command = _command(data, "--tracking-uri", tracking, target=TARGET_ON_DISK)
    storage = f"sqlite:///{work}/mlruns/optuna.db"

    code, stdout, stderr = _run_and_fill(command, work, _fill(small_disk))
    _assert_one_full_disk_line(code, stdout, stderr, ("MLflow tracking store",))
    # The Optuna storage had room: the batch in flight was told whole, nothing is in flight.
    study = _study(storage)
    assert not [t for t in study.trials if t.state is optuna.trial.TrialState.RUNNING]
    before = _completed(study)
    assert 0 < len(before) < TARGET_ON_DISK and len(before) % len(PLACEMENTS) == 0
    (small_disk / "filler").unlink()

    _rerun(cli, work, data, "--tracking-uri", tracking, target=TARGET_ON_DISK)
    study = _study(storage)
    _assert_resumed_whole(study, before, TARGET_ON_DISK)
    _sync(cli, work, "--tracking-uri", tracking)
    _assert_mlflow_level(tracking, study)


@pytest.mark.server
@pytest.mark.slow
def test_a_file_size_limit_mid_study_stops_in_one_line_and_resumes(tmp_path, cli):
    """The study's process may not write files past a size limit (what a quota looks like
    to a process: its writes are refused), so its stores' writes are refused mid-study as
    on a full disk. Runs everywhere: where mount is refused it is the full-disk check."""
    data = write_tiny_csv(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    command = _command(data)
    limit = 1_070_000  # bytes a file may grow to: a new MLflow store (0.95 MB) reaches it

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    process = subprocess.run(
        command, cwd=work, env=_env(), capture_output=True, text=True, preexec_fn=limited
    )
    lines = [line for line in process.stderr.splitlines() if line.strip()]
    assert process.returncode == 2, process.stderr[-3000:]
    assert "Traceback" not in process.stderr and 1 <= len(lines) <= 3, process.stderr
    assert re.search(r"(no space left on|file size limit).* (Optuna storage|MLflow)", lines[-1])
    storage = f"sqlite:///{work}/mlruns/optuna.db"
    before = _completed(_study(storage))
    assert 0 < len(before) < TARGET

    _rerun(cli, work, data)  # no limit on this process
    study = _study(storage)
    _assert_resumed_whole(study, before)
    _sync(cli, work)
    _assert_mlflow_level(f"sqlite:///{work}/mlruns/mlflow.db", study)
