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

Blocks are kept whole (:func:`blocks_to_complete`): a trial that failed without a result
(its process was interrupted, or died and was failed by
:func:`~bnsearch.backends.close_stale_trials`) is *retried* — a new trial with the same
parameters, seed and block — and a placement a block never got (its process died while
creating the block) is created the same way. A trial that failed with a result (diverged,
for instance) is an outcome, not retried. So counts stay whole blocks and a shared study
reaches its target exactly.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "Repair",
    "blocks_to_complete",
    "claim_lock",
    "is_outcome",
    "orphaned_trial_ids",
    "rdb_storage",
]

RESULT_ATTR = "bnsearch.result"


def rdb_storage(study: Any) -> Any:
    """The study's RDBStorage, under Optuna's cache wrapper if there is one."""
    storage = study._storage
    return getattr(storage, "_backend", storage)


@contextlib.contextmanager
def claim_lock(study: Any) -> Iterator[None]:
    """Hold the study's claim lock (see the module docstring) for the ``with`` block."""
    engine = getattr(rdb_storage(study), "engine", None)
    dialect = engine.dialect.name if engine is not None else ""
    if dialect == "postgresql":
        from sqlalchemy import text

        key = zlib.crc32(f"bnsearch:{study._study_id}".encode())
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
            try:
                yield
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                connection.commit()
    elif dialect == "sqlite" and engine.url.database not in (None, "", ":memory:"):
        path = Path(engine.url.database).with_name(Path(engine.url.database).name + ".claims")
        with open(path, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
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


def is_outcome(trial: Any) -> bool:
    """Whether a trial holds a result that counts: finished, in flight (running or
    waiting), or failed *with* a result of its own (it diverged). A trial failed by an
    interrupt or a dead process has none (or a result stored just before the interrupt
    failed it)."""
    import optuna

    if trial.state is not optuna.trial.TrialState.FAIL:
        return True
    stored = trial.user_attrs.get(RESULT_ATTR)
    return stored is not None and json.loads(stored).get("state") == "FAILED"


def blocks_to_complete(study: Any, placements: tuple[str, ...]) -> list[Repair]:
    """What every paired block still needs so that each placement has one outcome: a retry
    of each interrupted trial, and the placements a block never got (its process died
    while creating it). Search trials only; in block order."""
    blocks: dict[int, list[Any]] = {}
    for trial in study.get_trials(deepcopy=False):
        attrs = trial.user_attrs
        if attrs.get("bnsearch.phase", "search") != "search":
            continue
        if "bnsearch.block" not in attrs or "placement" not in trial.params:
            continue
        blocks.setdefault(int(attrs["bnsearch.block"]), []).append(trial)
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


def orphaned_trial_ids(study: Any, grace_period: float) -> list[int]:
    """RUNNING trials that never got a heartbeat and started over ``grace_period`` s ago.

    bnsearch records a trial's first heartbeat right after creating it, so such a trial's
    process died in between; Optuna's own stale check skips trials without a heartbeat,
    so without this they would stay RUNNING (and other workers wait on them) forever.
    Reads Optuna's heartbeat table (RDB storages only; none found otherwise).
    """
    import datetime

    storage = rdb_storage(study)
    if not hasattr(storage, "scoped_session"):
        return []
    from optuna.storages._rdb import models
    from optuna.trial import TrialState

    cutoff = datetime.datetime.now() - datetime.timedelta(seconds=grace_period)
    session = storage.scoped_session()
    try:
        trials = (
            session.query(models.TrialModel)
            .filter(models.TrialModel.study_id == study._study_id)
            .filter(models.TrialModel.state == TrialState.RUNNING)
            .all()
        )
        return [
            t.trial_id
            for t in trials
            if not t.heartbeats and t.datetime_start is not None and t.datetime_start < cutoff
        ]
    finally:
        session.close()
