"""Waiting on a running study's own stores, for the tests that signal it mid-study: a
condition read from its files, where a fixed sleep would only guess."""

from __future__ import annotations

import sqlite3
import subprocess
import time
from contextlib import closing
from pathlib import Path

#: The trials the Optuna storage holds as RUNNING: a batch asked for and not yet told.
_TRIALS_IN_FLIGHT = "SELECT COUNT(*) FROM trials WHERE state = 'RUNNING'"
#: The RUNNING trials that already name their MLflow run (a batch's runs are started, then
#: each trial is given its run's id: a kill between the two leaves a trial without it).
_TRIALS_LINKED = """
    SELECT COUNT(*) FROM trials JOIN trial_user_attributes USING (trial_id)
    WHERE trials.state = 'RUNNING' AND trial_user_attributes.key = 'mlflow_run_id'
"""
#: The trial runs MLflow holds as RUNNING: started, not yet ended.
_RUNS_IN_FLIGHT = """
    SELECT COUNT(*) FROM runs JOIN tags ON tags.run_uuid = runs.run_uuid
    WHERE runs.status = 'RUNNING' AND tags.key = 'bnsearch.kind' AND tags.value = 'trial'
"""


def _count(database: Path, query: str) -> int:
    with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5)) as db:
        return db.execute(query).fetchone()[0]


def wait_for_a_batch_in_flight(
    process: subprocess.Popen, stores: Path, timeout: float = 240
) -> None:
    """Return once the study in ``process`` trains a batch: the Optuna storage
    ``stores/optuna.db`` holds RUNNING trials, MLflow's ``stores/mlflow.db`` a RUNNING run
    for each, and each trial names its run (every run of the batch started and linked, so
    training is under way). Polls the files read-only; the runs are counted first, as they
    are started after the trials are asked, and the links last, as they are written after."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the study ended (exit {process.returncode}) before that")
        try:
            runs = _count(stores / "mlflow.db", _RUNS_IN_FLIGHT)
            trials = _count(stores / "optuna.db", _TRIALS_IN_FLIGHT)
            if runs and runs == trials == _count(stores / "optuna.db", _TRIALS_LINKED):
                return
        except sqlite3.OperationalError:  # not created yet, or locked a moment
            pass
        time.sleep(0.05)
    raise AssertionError(f"no batch in flight in {stores} within {timeout} s")
