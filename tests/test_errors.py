"""Bad input: one stderr line naming the problem, exit code 2, and the stores untouched."""

from __future__ import annotations

import os
import signal
import sqlite3
import urllib.request
from pathlib import Path

import pytest

from bnsearch.cli import main
from bnsearch.errors import DataError

TINY = ("--epochs", "1", "--hidden-units", "4", "--confirm-seeds", "0", "--quiet")


def _counts(folder: Path) -> tuple[int, int]:
    """(Optuna trials, MLflow runs) in the default stores under ``folder/mlruns``."""
    trials = runs = 0
    optuna_db, mlflow_db = folder / "mlruns" / "optuna.db", folder / "mlruns" / "mlflow.db"
    if optuna_db.exists():
        with sqlite3.connect(optuna_db) as db:
            trials = db.execute("select count(*) from trials").fetchone()[0]
    if mlflow_db.exists():
        with sqlite3.connect(mlflow_db) as db:
            runs = db.execute("select count(*) from runs").fetchone()[0]
    return trials, runs


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """A folder whose default stores already hold one small study."""
    from bnsearch.data import make_synthetic

    folder = tmp_path_factory.mktemp("errors")
    data = make_synthetic(200, seed=1)
    rows = [",".join([*data.feature_names, "label"])]
    rows += [",".join(map(str, [*x, y])) for x, y in zip(data.x, data.y, strict=True)]
    (folder / "good.csv").write_text("\n".join(rows) + "\n")
    (folder / "empty.csv").write_text("")
    (folder / "text.csv").write_text("a,b,label\nx,1,0\ny,2,1\n")
    (folder / "nan.csv").write_text("a,b,label\n1,,0\n2,3,1\n")
    (folder / "one.csv").write_text("a,b,label\n1,2,0\n2,3,0\n")
    (folder / "noheader.csv").write_text("1,2,0\n2,3,1\n")
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    here = os.getcwd()
    os.chdir(folder)
    try:
        code = main(
            ["study", "--data", "good.csv", "--target", "label", "--n-trials", "3",
             "--study-name", "kept", *TINY]
        )  # fmt: skip
    finally:
        os.chdir(here)
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    assert code == 0
    return folder


CASES = {
    "missing file": (["--data", "nope.csv", "--target", "label"], ["nope.csv", "does not exist"]),
    "empty file": (["--data", "empty.csv", "--target", "label"], ["empty"]),
    "unknown extension": (["--data", "data.json"], ["unknown extension"]),
    "no header": (["--data", "noheader.csv", "--target", "label"], ["header"]),
    "missing target": (["--data", "good.csv", "--target", "churn"], ["'churn' not found", "age"]),
    "no target given": (["--data", "good.csv"], ["--target"]),
    "non-numeric": (["--data", "text.csv", "--target", "label"], ["non-numeric", "a"]),
    "nan": (["--data", "nan.csv", "--target", "label"], ["NaN"]),
    "single class": (["--data", "one.csv", "--target", "label"], ["single class"]),
    "too few rows": (["--data", "sklearn:iris", "--batch-size", "500"], ["too few"]),
    "unknown sklearn": (["--data", "sklearn:nope"], ["sklearn:nope"]),
    "bad openml id": (["--data", "openml:abc"], ["openml:abc", "number"]),
    "bad range": (["--placements", "before,sideways"], ["sideways"]),
    "bad validation split": (["--validation-split", "1.5"], ["validation_split"]),
    "changed space": (
        [
            "--data",
            "good.csv",
            "--target",
            "label",
            "--study-name",
            "kept",
            "--placements",
            "before,after",
        ],
        ["different space", "--allow-changed-study"],
    ),  # fmt: skip
    "unreachable storage": (
        ["--storage", "postgresql://nobody@127.0.0.1:1/none"],
        ["Optuna storage", "--storage"],
    ),
    "malformed storage": (["--storage", "not a url"], ["Optuna storage"]),
    "malformed tracking uri": (["--tracking-uri", "bogus://x"], ["MLflow tracking store"]),
}


@pytest.mark.trains
@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_exit_2_and_leaves_the_stores_unchanged(workspace, case, cli):
    (workspace / "data.json").write_text("{}")
    args, words = CASES[case]
    before = _counts(workspace)
    result = cli("study", *args, "--n-trials", "3", *TINY, cwd=workspace)
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("bnsearch: error:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    for word in words:
        assert word in errors[0]
    assert _counts(workspace) == before


@pytest.mark.trains
def test_a_locked_store_is_reported_not_crashed(workspace, cli):
    before = _counts(workspace)
    lock = sqlite3.connect(workspace / "mlruns" / "optuna.db", timeout=0)
    lock.execute("begin exclusive")
    try:
        result = cli("study", "--n-trials", "3", *TINY, cwd=workspace)
    finally:
        lock.rollback()
        lock.close()
    assert result.returncode == 2, result.stderr[-2000:]
    assert "locked" in result.stderr and "Traceback" not in result.stderr
    assert _counts(workspace)[0] == before[0]


@pytest.mark.trains
def test_debug_lets_the_error_through_with_its_traceback(workspace, cli):
    with pytest.raises(DataError, match="nope.csv"):
        cli("--debug", "study", "--data", "nope.csv", *TINY, cwd=workspace)
    with pytest.raises(DataError, match="nope.csv"):
        cli("study", "--data", "nope.csv", "--debug", *TINY, cwd=workspace)


def test_openml_offline_is_a_clear_error(tmp_path, monkeypatch):
    from bnsearch.data import load_dataset

    # A proxy on a closed local port: the real download path, failing at once as offline.
    for name in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    monkeypatch.setenv("SCIKIT_LEARN_DATA", str(tmp_path))
    try:
        with pytest.raises(DataError, match="offline"):
            load_dataset("openml:31")
    finally:
        # urlopen's shared opener was built with that proxy and would keep it for every
        # later test of this process: dropped, it is built anew from the environment.
        urllib.request.install_opener(None)
