"""Claiming work in a shared study: one process at a time decides what runs next.

Several workers (processes or machines) add trials to one Optuna study. Deciding what to
run next — which interrupted trials to retry, whether the target leaves room for another
block — and creating those trials must be one step, or two workers both take the last
block and the study overshoots its target. bnsearch holds a lock for that step only
(training runs outside it), using what the storage's database already offers:

* PostgreSQL: a session-level advisory lock (``pg_advisory_lock``) keyed by the study id.
  The server drops it with the connection, so a worker killed while holding it cannot
  leave it held.
* SQLite: an exclusive ``flock`` on ``<database file>.claims`` (one machine's file, so a
  file lock reaches every process that can open the database).
* Any other database: no lock; the study may then overshoot its target by a block when
  workers claim at the same instant.

Either lock is waited for at most :data:`LOCK_TIMEOUT_S` (a StoreError then names the
lock); a claim cut by a dropped connection is claimed again (:mod:`._retry`).

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
import math
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
    "LOCK_TIMEOUT_S",
    "Repair",
    "blocks_to_complete",
    "claim_batch",
    "claim_lock",
]


#: The longest a worker waits for another worker's claim (which takes well under a second).
LOCK_TIMEOUT_S = 120.0


def _wait_for(take: Any, what: str, timeout: float) -> None:
    """Call ``take()`` until it returns True, for at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    delay = 0.05
    while not take():
        if time.monotonic() >= deadline:
            raise StoreError(
                f"waited {timeout:.0f} s for {what}, held by another worker that should "
                "need well under a second; if a worker hangs, stop it (its lock goes with "
                "it) and run again."
            )
        time.sleep(delay)
        delay = min(delay * 2, 1.0)


@contextlib.contextmanager
def claim_lock(study: Any, timeout: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """Hold the study's claim lock (see the module docstring) for the ``with`` block."""
    engine = adapter.sql_engine(study)
    dialect = engine.dialect.name if engine is not None else ""
    if dialect == "postgresql":
        from sqlalchemy import text

        key = zlib.crc32(f"bnsearch:{adapter.study_id(study)}".encode())
        with engine.connect() as connection:

            def take() -> bool:
                taken = connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key})
                return bool(taken.scalar())

            _wait_for(take, f"the claim lock of study {study.study_name!r}", timeout)
            try:
                yield
                # The server drops the lock with a lost connection: if it went during the
                # claim, another worker may have claimed too, so the claim must not stand.
                connection.execute(text("SELECT 1"))
            finally:
                try:
                    connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                    connection.commit()
                except Exception as error:
                    # The lock went with the lost connection; what was claimed stands.
                    if not is_transient(error):
                        raise
    elif dialect == "sqlite" and engine.url.database not in (None, "", ":memory:"):
        path = Path(engine.url.database).with_name(Path(engine.url.database).name + ".claims")
        with open(path, "a") as handle:

            def take() -> bool:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return False
                return True

            _wait_for(take, f"the claim lock {path}", timeout)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
    else:
        yield


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
    block_size = len(config.space.placement)
    asked: list[Member] = []
    try:
        with claim_lock(study):
            if config.target_trials is not None:
                remaining = config.target_trials - search_trial_count(study)
            else:
                remaining = wanted or 0
            if remaining <= 0:
                return []
            repairs = blocks_to_complete(study, config.space.placement)
            asked.extend(repair.claim(study) for repair in repairs[: min(capacity, remaining)])
            remaining -= len(asked)
            room = (
                (capacity - len(asked)) // block_size if asked else max(1, capacity // block_size)
            )
            for _ in range(min(room, math.ceil(max(remaining, 0) / block_size))):
                asked.extend(ask_block(study, config))
    except Exception as error:
        if is_transient(error):
            _withdraw(study, asked)  # the claim is made again, under a lock held throughout
        raise
    return asked


def _withdraw(study: Any, asked: list[Member]) -> None:
    """Fail trials of a claim that lost its lock (or its connection) part-way, marked so
    that nothing counts or retries them: another worker may have claimed meanwhile."""
    import optuna

    for trial, _ in asked:
        retry_transient(lambda t=trial: t.set_user_attr(keys.WITHDRAWN, True))
        retry_transient(
            lambda t=trial: study.tell(t, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
        )
