"""Heartbeats of running trials (Optuna beats only inside ``Study.optimize``), and failing
the trials of a process that died (:func:`close_dead_trials`)."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING

import bnsearch.backends.optuna._adapter as adapter
from bnsearch.backends._loop import Member
from bnsearch.backends.optuna._retry import retry_transient
from bnsearch.errors import full_disk
from bnsearch.tracking import MlflowTracker, TrackingUnavailable
from bnsearch.trial import keys, process_alive

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

STALE_REASON = "stale: its process stopped (no heartbeat within the grace period)"
GONE_REASON = "stale: its process on this machine is gone"


def first_beat(study: optuna.Study, trial_id: int) -> None:
    """Beat for a trial the moment it exists: Optuna never counts a trial without any
    heartbeat as stale (see :func:`~._adapter.orphaned_trial_ids` for a death
    before this beat)."""
    if adapter.heartbeat_interval(study):
        adapter.record_heartbeat(study, trial_id)


@contextlib.contextmanager
def beating(study: optuna.Study, members: list[Member]) -> Iterator[None]:
    """Record Optuna heartbeats for ``members`` (a list that may grow meanwhile) from a
    background thread."""
    interval = adapter.heartbeat_interval(study)
    if not interval:
        yield
        return
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(interval):
            for trial, _ in members:
                # A missed beat must not stop training; the next one will do.
                with contextlib.suppress(Exception):
                    adapter.record_heartbeat(study, adapter.trial_id(trial))

    thread = threading.Thread(target=beat, daemon=True, name="bnsearch-beat")
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def close_dead_trials(study: optuna.Study, tracker: MlflowTracker) -> int:
    """Fail the trials a dead process left RUNNING and end their MLflow runs as FAILED; how
    many there were. A process of this machine that is gone (by ``bnsearch.worker``'s host
    and pid) loses its trials at once, any other by the heartbeat rule (no heartbeat for
    ``grace_period``); containers sharing a host name would be taken for each other: give
    them their own host names."""
    import optuna

    running = {
        adapter.trial_id(t): t
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    }
    host, me = socket.gethostname(), os.getpid()
    gone = []
    for trial_id, trial in list(running.items()):
        name, _, pid = str(trial.user_attrs.get(keys.WORKER, "")).rpartition(":")
        if name == host and pid.isdigit() and int(pid) != me and not process_alive(pid):
            gone.append(running.pop(trial_id))
            try:
                adapter.fail_trial(study, trial_id)
            except Exception as error:
                if full_disk(error):
                    raise
                # Another worker failed it first.
    fail_runs(tracker, gone, GONE_REASON)
    if not running:
        return len(gone)
    with warnings.catch_warnings():  # "experimental", else said at every reclaim
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    grace = adapter.heartbeat_interval(study) and adapter.grace_period(study)
    if grace:
        # A raw session of its own, outside the retrying storage: retried here.
        for trial_id in retry_transient(lambda: adapter.orphaned_trial_ids(study, grace)):
            with contextlib.suppress(Exception):  # another worker may fail it first
                adapter.fail_trial(study, trial_id)
    failed = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,))
    stale = [t for t in failed if adapter.trial_id(t) in running]
    fail_runs(tracker, stale, STALE_REASON)
    return len(gone) + len(stale)


def fail_runs(tracker: MlflowTracker, trials: list[FrozenTrial], reason: str) -> None:
    """End the failed trials' MLflow runs with ``reason`` (Optuna refuses attributes on
    finished trials); if MLflow is away, its next sync ends them."""
    with contextlib.suppress(TrackingUnavailable):
        tracker.fail_abandoned_runs(
            [t.number for t in trials],
            [t.user_attrs.get(keys.PARENT_RUN, "") for t in trials],
            reason,
        )
