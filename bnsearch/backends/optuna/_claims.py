"""Which process owns which trial: claiming work in a shared study (the trials of paired
blocks and of the confirmation round), heartbeats for the trials it runs (Optuna beats only
inside ``Study.optimize``), and failing the trials of a process that died.

Deciding what to run next and creating those trials is one step under a lock (training runs
outside it), or two workers both take the last block and the study overshoots its target:

* PostgreSQL: a transaction-level advisory lock keyed by the study id, committed only after
  the claim's trials and their first heartbeats are (docs/guides/workers.md says why). A
  claim whose lock went before its commit withdraws its trials and is made again.
* SQLite: an exclusive ``flock`` on ``<database file>.claims``.
* Any other database: no lock; workers claiming at the same instant may overshoot by a block.

Blocks are kept whole (:func:`blocks_to_complete`): a trial that failed without a result is
retried with the same parameters, seed and block; one that failed with a result (diverged)
is an outcome."""

from __future__ import annotations

import contextlib
import fcntl
import functools
import logging
import math
import os
import random
import socket
import threading
import time
import warnings
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import bnsearch.backends.optuna._adapter as adapter
from bnsearch.backends._loop import Member
from bnsearch.backends.optuna._storage import (
    is_outcome,
    is_transient,
    retry_transient,
    search_trial_count,
    served,
)
from bnsearch.config import StudyConfig
from bnsearch.errors import StoreError, full_disk
from bnsearch.tracking import MlflowTracker, TrackingUnavailable
from bnsearch.trial import BNConfig, Phase, TrialSpec, keys, process_alive, trial_seed

if TYPE_CHECKING:
    import optuna
    from optuna.distributions import BaseDistribution
    from optuna.trial import FrozenTrial
    from sqlalchemy.engine import Engine


def first_beat(study: optuna.Study, trial_id: int) -> None:
    """Beat for a trial the moment it exists: Optuna never counts a trial without any
    heartbeat as stale."""
    if adapter.heartbeat_interval(study):
        adapter.record_heartbeat(study, trial_id)


@contextlib.contextmanager
def beating(study: optuna.Study, members: list[Member]) -> Iterator[None]:
    """Beat for ``members`` (a list that may grow meanwhile) from a background thread."""
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
    """Fail the trials a dead process left RUNNING and end their MLflow runs; how many. A
    gone process of this machine (by ``bnsearch.worker``'s host:pid) loses its trials at
    once, any other by the heartbeat rule (containers must not share a host name)."""
    import optuna

    running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    host, me = socket.gethostname(), os.getpid()
    gone = []
    for trial in running:
        name, _, pid = str(trial.user_attrs.get(keys.WORKER, "")).rpartition(":")
        if name == host and pid.isdigit() and int(pid) != me and not process_alive(pid):
            gone.append(trial)
            try:
                adapter.fail_trial(study, adapter.trial_id(trial))
            except Exception as error:
                if full_disk(error):
                    raise
                # Another worker failed it first.
    fail_runs(tracker, gone, "stale: its process on this machine is gone")
    if len(gone) == len(running):
        return len(gone)
    with warnings.catch_warnings():  # "experimental", else said at every reclaim
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    # A raw session of its own, outside the retrying storage: retried here.
    for trial_id in retry_transient(lambda: adapter.orphaned_trial_ids(study)):
        with contextlib.suppress(Exception):  # another worker may fail it first
            adapter.fail_trial(study, trial_id)
    left = {t.number for t in running} - {t.number for t in gone}
    failed = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,))
    stale = [t for t in failed if t.number in left]
    fail_runs(tracker, stale, "stale: its process stopped (no heartbeat within the grace period)")
    return len(gone) + len(stale)


def fail_runs(tracker: MlflowTracker, trials: list[FrozenTrial], reason: str) -> None:
    """End the failed trials' MLflow runs with ``reason``; if MLflow is away, sync does."""
    with contextlib.suppress(TrackingUnavailable):
        tracker.fail_abandoned_runs(
            [t.number for t in trials],
            [t.user_attrs.get(keys.PARENT_RUN, "") for t in trials],
            reason,
        )


#: Each claim's timing at DEBUG (read by ``tests/support/worker_bench.py``).
CLAIM_LOG = logging.getLogger("bnsearch.claims")
#: The longest a worker waits for the SQLite claim lock (a claim takes well under a second).
LOCK_TIMEOUT_S = 120.0
#: The longest a PostgreSQL claim may hold its lock before the server ends its transaction
#: (a hung holder), so a PostgreSQL waiter needs no limit of its own.
LOCK_HOLD_LIMIT_S = 60.0
#: Waits between tries for the lock: "full jitter" under a doubling ceiling.
_FIRST_WAIT_S, _LONGEST_WAIT_S = 0.01, 0.5


def _wait_for(take: Callable[[], bool], what: str, timeout: float | None) -> None:
    """Call ``take()`` until it returns True, for at most ``timeout`` seconds."""
    deadline = None if timeout is None else time.monotonic() + timeout
    ceiling = _FIRST_WAIT_S
    while not take():
        if deadline is not None and time.monotonic() >= deadline:
            raise StoreError(
                f"waited {timeout:.0f} s for {what}, held by another worker that should "
                "need well under a second; if a worker hangs, stop it (its lock goes with "
                "it) and run again."
            )
        time.sleep(random.uniform(0.0, ceiling))
        ceiling = min(ceiling * 2, _LONGEST_WAIT_S)


def claim_lock(study: optuna.Study) -> contextlib.AbstractContextManager[None]:
    """The study's claim lock, to hold (see the module docstring)."""
    engine = adapter.sql_engine(study)
    if engine is None:
        return contextlib.nullcontext()
    if engine.dialect.name == "postgresql":
        key = zlib.crc32(f"bnsearch:{adapter.study_id(study)}".encode())
        return _transaction_lock(engine, key, f"the claim lock of study {study.study_name!r}")
    database = engine.url.database
    if engine.dialect.name == "sqlite" and database not in (None, "", ":memory:"):
        return _file_lock(Path(f"{database}.claims"))
    return contextlib.nullcontext()


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with open(path, "a") as handle:

        def take() -> bool:
            with contextlib.suppress(BlockingIOError):
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            return False

        _wait_for(take, f"the claim lock {path}", LOCK_TIMEOUT_S)
        yield


@contextlib.contextmanager
def _transaction_lock(engine: Engine, key: int, what: str) -> Iterator[None]:
    """``pg_try_advisory_xact_lock(key)`` in a transaction of its own connection, committed
    at the block's end; a failed commit propagates (the claim is made again)."""
    from sqlalchemy import text

    take_lock = text(
        "SELECT pg_try_advisory_xact_lock(:key), "
        "set_config('idle_in_transaction_session_timeout', :hold, true)"
    )
    hold = str(int(LOCK_HOLD_LIMIT_S * 1000))
    with engine.connect() as connection:

        def take() -> bool:
            taken = bool(connection.execute(take_lock, {"key": key, "hold": hold}).scalar())
            if not taken:
                connection.rollback()  # no server connection held between tries
            return taken

        try:
            _wait_for(take, what, None)
            yield
            connection.commit()
        except BaseException:
            with contextlib.suppress(Exception):
                connection.rollback()
            raise


class Repair(NamedTuple):
    """A trial a paired block lacks; ``retries``: the interrupted trial it retries, if any."""

    params: dict[str, Any]
    distributions: dict[str, BaseDistribution]
    seed: int
    block: int
    retries: int | None


def blocks_to_complete(trials: list[FrozenTrial], placements: tuple[str, ...]) -> list[Repair]:
    """What each paired search block still needs for one outcome per placement, in order."""
    blocks: dict[int, list[FrozenTrial]] = {}
    for trial in trials:
        attrs = trial.user_attrs
        searched = attrs.get(keys.PHASE, Phase.SEARCH) == Phase.SEARCH and keys.BLOCK in attrs
        if searched and not attrs.get(keys.WITHDRAWN) and "placement" in trial.params:
            blocks.setdefault(int(attrs[keys.BLOCK]), []).append(trial)
    repairs = []
    for block, members in sorted(blocks.items()):
        template = members[0]
        seed = int(template.user_attrs["seed"])
        for placement in placements:
            same = [t for t in members if t.params["placement"] == placement]
            if any(is_outcome(t) for t in same):
                continue
            params = {**template.params, "placement": placement}
            retries = same[0].number if same else None
            repairs.append(Repair(params, template.distributions, seed, block, retries))
    return repairs


def claim_batch(
    study: optuna.Study, config: StudyConfig, capacity: int, wanted: int | None
) -> list[Member]:
    """``PairedSearcher.ask_batch`` under the claim lock."""

    def claim() -> list[Member]:
        asked: list[Member] = []
        started = time.monotonic()
        try:
            # The batch's beats start after the claim: a long claim beats for its own trials.
            with claim_lock(study), beating(study, asked):
                locked = time.monotonic()
                _decide_and_create(study, config, capacity, wanted, asked)
        except Exception as error:
            if is_transient(error):
                _withdraw(study, asked)  # the claim is made again, under a lock held throughout
            raise
        held = time.monotonic() - locked
        CLAIM_LOG.debug(
            "claim waited_s=%.6f held_s=%.6f trials=%d", locked - started, held, len(asked)
        )
        return asked

    return retry_transient(claim) if served(config.resolved_storage) else claim()


def _decide_and_create(
    study: optuna.Study, config: StudyConfig, capacity: int, wanted: int | None, asked: list[Member]
) -> None:
    """The claim, each trial appended to ``asked`` as soon as it exists."""
    block_size = len(config.space.placement)
    trials = study.get_trials(deepcopy=False)  # read once under the lock, for both questions
    if config.target_trials is not None:
        remaining = config.target_trials - search_trial_count(trials)
    else:
        remaining = wanted or 0
    if remaining <= 0:
        return
    for r in blocks_to_complete(trials, config.space.placement)[: min(capacity, remaining)]:
        extra = {} if r.retries is None else {keys.RETRIES_TRIAL: r.retries}
        asked.append(claim_trial(study, r.params, r.distributions, r.seed, r.block, extra))
    remaining -= len(asked)
    room = (capacity - len(asked)) // block_size if asked else max(1, capacity // block_size)
    for _ in range(min(room, math.ceil(max(remaining, 0) / block_size))):
        asked.extend(ask_block(study, config))


def _withdraw(study: optuna.Study, asked: list[Member]) -> None:
    """Fail a claim's trials after it lost its lock part-way, marked so nothing counts them."""
    import optuna

    fail = optuna.trial.TrialState.FAIL
    for trial, _ in asked:
        retry_transient(functools.partial(trial.set_user_attr, keys.WITHDRAWN, True))
        retry_transient(functools.partial(study.tell, trial, state=fail, skip_if_finished=True))


def _attrs(seed: int, block: int, phase: Phase) -> dict[str, Any]:
    worker = f"{socket.gethostname()}:{os.getpid()}"
    return {"seed": seed, keys.PHASE: phase, keys.BLOCK: block, keys.WORKER: worker}


def claim_trial(
    study: optuna.Study,
    params: dict[str, Any],
    distributions: dict[str, BaseDistribution],
    seed: int,
    block: int,
    extra_attrs: dict[str, Any] | None = None,
    phase: Phase = Phase.SEARCH,
) -> Member:
    """A RUNNING trial of this process with fixed ``params``."""
    attrs = {**_attrs(seed, block, phase), **(extra_attrs or {})}
    trial = adapter.create_running_trial(study, params, distributions, attrs)
    first_beat(study, adapter.trial_id(trial))
    return Member(trial, TrialSpec(trial.number, BNConfig(**params), seed, block, phase=phase))


def ask_block(study: optuna.Study, config: StudyConfig) -> list[Member]:
    """Ask one trial from the sampler, then one per other placement with the same values."""
    template = study.ask()
    first_beat(study, adapter.trial_id(template))
    first = config.space.suggest(template)
    block = template.number
    seed = trial_seed(config.seed, block)
    for key, value in _attrs(seed, block, Phase.SEARCH).items():
        template.set_user_attr(key, value)
    members = [Member(template, TrialSpec(block, first, seed, block))]
    for placement in config.space.placement:
        if placement != first.placement:
            params = {**template.params, "placement": placement}
            members.append(claim_trial(study, params, template.distributions, seed, block))
    return members
