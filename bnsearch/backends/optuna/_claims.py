"""Claiming work in a shared study: one process at a time decides what runs next.

Several workers (processes or machines) add trials to one Optuna study. Deciding what to
run next — which interrupted trials to retry, whether the target leaves room for another
block — and creating those trials must be one step, or two workers both take the last
block and the study overshoots its target. bnsearch holds a lock for that step only
(training runs outside it), using what the storage's database already offers:

* PostgreSQL: a *transaction-level* advisory lock (``pg_try_advisory_xact_lock``) keyed
  by the study id, taken in a transaction of the claim's own connection that stays open
  until the claim's trials exist. Optuna's storage commits each call on its own
  connection, so the trials are created on other transactions *while the lock's
  transaction is open*: the lock is taken before the study is read, and its transaction
  commits (releasing it) only after the last trial of the claim, and its first heartbeat,
  have been committed. The next worker reads the study only once it holds the lock, so it
  sees all of them; deciding and creating are one step. The lock is never held by a
  session across transactions, so it works through a transaction-pooling pooler
  (PgBouncer ``pool_mode = transaction``), which pins a server connection to a client
  for one transaction only: a session-level lock there stays with whichever server
  connection took it, and may be "held" by nobody, or by the next client given that
  connection. Why an advisory lock rather than a row lock on a claims table: it needs no
  table of bnsearch's own in Optuna's schema, no row per study to create first (and race
  to create), and a lock that lives exactly as long as its transaction is all a claim
  needs; a claims table would record who claimed, which the trials record already
  (``bnsearch.worker``).

  A waiting worker does not block in the server: each try is one short transaction
  (``pg_try_advisory_xact_lock``, rolled back when it fails), then a jittered wait
  (:func:`_wait_for`). A worker blocked in ``pg_advisory_xact_lock`` would pin a server
  connection of the pooler for as long as it waits; with more waiters than the pool's
  ``default_pool_size`` they would take every server connection and the holder could not
  get one to create its trials: a deadlock. So a waiter holds no server connection
  between tries, and the holder needs two at once (the lock's and one for its storage
  calls): a pool of two or more per database and user.

  The server ends the lock with its transaction: a worker killed while holding it, or
  whose connection drops, cannot leave it held (a pooler closes a server connection whose
  client vanished mid-transaction). A holder that hangs (a stopped process) is cut off by
  the server after :data:`LOCK_HOLD_LIMIT_S` (``idle_in_transaction_session_timeout``,
  set for that transaction only). A claim whose lock went before its commit (a dropped
  connection, a cut-off hang) fails its trials as withdrawn and is made again
  (:func:`claim_batch`): another worker may have claimed meanwhile.
* SQLite: an exclusive ``flock`` on ``<database file>.claims`` (one machine's file, so a
  file lock reaches every process that can open the database).
* Any other database: no lock; the study may then overshoot its target by a block when
  workers claim at the same instant.

The SQLite lock is waited for at most :data:`LOCK_TIMEOUT_S` (a StoreError then names
the lock); the PostgreSQL lock as long as it takes, since the server lets no holder keep
it past :data:`LOCK_HOLD_LIMIT_S` (many workers on a saturated lock wait longer, and none
gives up for it). A claim cut by a dropped connection is claimed again
(:mod:`._retry`).

Blocks are kept whole (:func:`blocks_to_complete`): a trial that failed without a result
(its process was interrupted, or died and was failed by
:func:`~._heartbeat.close_stale_trials`) is *retried* — a new trial with the same
parameters, seed and block — and a placement a block never got (its process died while
creating the block) is created the same way. A trial that failed with a result (diverged,
for instance) is an outcome, not retried. So counts stay whole blocks and a shared study
reaches its target exactly.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import logging
import math
import random
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bnsearch.backends.optuna._adapter as adapter
from bnsearch.backends._loop import Member
from bnsearch.backends.optuna._ask import ask_block, claim_trial
from bnsearch.backends.optuna._retry import is_transient, retry_transient, served
from bnsearch.backends.optuna._storage import is_outcome, search_trial_count
from bnsearch.config import StudyConfig
from bnsearch.errors import StoreError
from bnsearch.trial import Phase, keys

__all__ = [
    "CLAIM_LOG",
    "LOCK_HOLD_LIMIT_S",
    "LOCK_TIMEOUT_S",
    "Repair",
    "blocks_to_complete",
    "claim_batch",
    "claim_lock",
]


#: Each claim's timing, at DEBUG: ``claim waited_s=… held_s=… trials=…`` (the wait for the
#: lock, the time it was held, the trials created); the test suite's multi-worker benchmark
#: (``tests/support/worker_bench.py``) reads it.
CLAIM_LOG = logging.getLogger("bnsearch.claims")
#: The longest a worker waits for the SQLite claim lock (a claim takes well under a second;
#: a holder that hangs holds a file lock until it is stopped).
LOCK_TIMEOUT_S = 120.0
#: The longest a PostgreSQL claim may hold its lock before the server ends its transaction
#: (a hung holder); a claim takes well under a second, even in a study of 10,000 trials.
#: So a PostgreSQL waiter needs no limit of its own: every holder lets go within this, or
#: with its connection, and a busy lock (many workers claiming) only means a longer wait.
LOCK_HOLD_LIMIT_S = 60.0
#: Waits between tries for the lock: each a random fraction of a ceiling that doubles from
#: the first to the last ("full jitter": waiters do not try in step).
_FIRST_WAIT_S, _LONGEST_WAIT_S = 0.01, 0.5


def _wait_for(take: Any, what: str, timeout: float | None) -> None:
    """Call ``take()`` until it returns True, for at most ``timeout`` seconds (None: as
    long as it takes)."""
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


@contextlib.contextmanager
def claim_lock(study: Any, timeout: float | None = None) -> Iterator[None]:
    """Hold the study's claim lock (see the module docstring) for the ``with`` block,
    waiting at most ``timeout`` seconds for it (None: on PostgreSQL as long as it takes,
    see :data:`LOCK_HOLD_LIMIT_S`; on SQLite :data:`LOCK_TIMEOUT_S`)."""
    engine = adapter.sql_engine(study)
    dialect = engine.dialect.name if engine is not None else ""
    what = f"the claim lock of study {study.study_name!r}"
    if dialect == "postgresql":
        key = zlib.crc32(f"bnsearch:{adapter.study_id(study)}".encode())
        with _transaction_lock(engine, key, what, timeout):
            yield
    elif (
        engine is not None
        and dialect == "sqlite"
        and engine.url.database not in (None, "", ":memory:")
    ):
        path = Path(engine.url.database).with_name(Path(engine.url.database).name + ".claims")
        with open(path, "a") as handle:

            def take() -> bool:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return False
                return True

            _wait_for(take, f"the claim lock {path}", timeout or LOCK_TIMEOUT_S)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
    else:
        yield


@contextlib.contextmanager
def _transaction_lock(engine: Any, key: int, what: str, timeout: float | None) -> Iterator[None]:
    """``pg_try_advisory_xact_lock(key)`` in a transaction of a connection of its own, open
    for the ``with`` block and committed at its end (which releases the lock). A commit
    that fails means the lock went before the block ended: the error propagates, and the
    claim is withdrawn and made again."""
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
            _wait_for(take, what, timeout)
            yield
            connection.commit()
        except BaseException:
            with contextlib.suppress(Exception):
                connection.rollback()
            raise


@dataclass(frozen=True)
class Repair:
    """A trial a paired block lacks: its parameters, seed and block, and the number of the
    interrupted trial it retries (``None`` when the block never got that placement)."""

    params: dict[str, Any]
    distributions: dict[str, Any]
    seed: int
    block: int
    retries: int | None

    def claim(self, study: Any) -> Member:
        """A new trial with this repair's parameters, seed and block."""
        extra = {} if self.retries is None else {keys.RETRIES_TRIAL: self.retries}
        return claim_trial(study, self.params, self.distributions, self.seed, self.block, extra)


def blocks_to_complete(study: Any, placements: tuple[str, ...]) -> list[Repair]:
    """What every paired block still needs so that each placement has one outcome: a retry
    of each interrupted trial, and the placements a block never got (its process died
    while creating it). Search trials only; in block order."""
    blocks: dict[int, list[Any]] = {}
    for trial in study.get_trials(deepcopy=False):
        attrs = trial.user_attrs
        if attrs.get(keys.PHASE, Phase.SEARCH) != Phase.SEARCH or attrs.get(keys.WITHDRAWN):
            continue
        if keys.BLOCK not in attrs or "placement" not in trial.params:
            continue
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


def claim_batch(study: Any, config: StudyConfig, capacity: int, wanted: int | None) -> list[Member]:
    """Under the claim lock: retries first, then new whole blocks, at most ``capacity``
    trials (at least one block). ``wanted`` is this run's remaining budget; with
    ``config.target_trials`` the study's own count decides instead. A claim cut by a lost
    connection is made again (trials it had created are failed as orphans later)."""
    if not served(config.resolved_storage):
        return _claim_batch(study, config, capacity, wanted)
    return retry_transient(lambda: _claim_batch(study, config, capacity, wanted))


def _claim_batch(
    study: Any, config: StudyConfig, capacity: int, wanted: int | None
) -> list[Member]:
    asked: list[Member] = []
    started = time.monotonic()
    try:
        with claim_lock(study):
            locked = time.monotonic()
            _decide_and_create(study, config, capacity, wanted, asked)
    except Exception as error:
        if is_transient(error):
            _withdraw(study, asked)  # the claim is made again, under a lock held throughout
        raise
    ended = time.monotonic()
    CLAIM_LOG.debug(
        "claim waited_s=%.6f held_s=%.6f trials=%d", locked - started, ended - locked, len(asked)
    )
    return asked


def _decide_and_create(
    study: Any, config: StudyConfig, capacity: int, wanted: int | None, asked: list[Member]
) -> None:
    """The claim itself, under the lock: what is left to do, then retries first and new
    whole blocks, each trial appended to ``asked`` as soon as it exists."""
    block_size = len(config.space.placement)
    snapshot = _Snapshot(study)  # read once under the lock, for both questions
    if config.target_trials is not None:
        remaining = config.target_trials - search_trial_count(snapshot)
    else:
        remaining = wanted or 0
    if remaining <= 0:
        return
    keep_alive = _KeepAlive(study)
    repairs = blocks_to_complete(snapshot, config.space.placement)
    for repair in repairs[: min(capacity, remaining)]:
        asked.append(repair.claim(study))
        keep_alive(asked)
    remaining -= len(asked)
    room = (capacity - len(asked)) // block_size if asked else max(1, capacity // block_size)
    for _ in range(min(room, math.ceil(max(remaining, 0) / block_size))):
        asked.extend(ask_block(study, config))
        keep_alive(asked)


class _Snapshot:
    """The study's trials read once, answering ``get_trials`` as the study would: how many
    count towards the target and what the blocks lack are asked of the same read (each
    read of a shared study fetches every trial in flight again)."""

    def __init__(self, study: Any) -> None:
        self.trials = study.get_trials(deepcopy=False)

    def get_trials(self, deepcopy: bool = False, states: Any = None) -> list[Any]:
        return [t for t in self.trials if states is None or t.state in states]


class _KeepAlive:
    """Beats for the trials a long claim has created so far, every half heartbeat interval:
    each got its first beat when it was created, and the batch's :class:`~._heartbeat.Heartbeat`
    starts only once the claim is done, so without this a claim that outlasts the grace
    period (many blocks, a slow sampler on a big study, a starved CPU) would see its first
    trials failed as stale by other workers before they train."""

    def __init__(self, study: Any) -> None:
        self.study = study
        self.every_s = (adapter.heartbeat_interval(study) or 0) / 2
        self.last = time.monotonic()

    def __call__(self, asked: list[Member]) -> None:
        if not self.every_s or time.monotonic() - self.last < self.every_s:
            return
        for trial, _ in asked:
            adapter.record_heartbeat(self.study, adapter.trial_id(trial))
        self.last = time.monotonic()


def _withdraw(study: Any, asked: list[Member]) -> None:
    """Fail trials of a claim that lost its lock (or its connection) part-way, marked so
    that nothing counts or retries them: another worker may have claimed meanwhile."""
    import optuna

    for trial, _ in asked:
        retry_transient(functools.partial(trial.set_user_attr, keys.WITHDRAWN, True))
        retry_transient(
            functools.partial(
                study.tell, trial, state=optuna.trial.TrialState.FAIL, skip_if_finished=True
            )
        )
