"""What a shared study's next claim repairs, and the lock that makes claims one at a time."""

from __future__ import annotations

import datetime
import threading
import time

import optuna
import pytest

from bnsearch.backends.optuna import blocks_to_complete, claim_lock, is_outcome
from bnsearch.trial import BNConfig, TrialResult, TrialSpec, TrialState
from tests._postgres import POSTGRES, fresh_database, needs_postgres

DIST = {"placement": optuna.distributions.CategoricalDistribution(["none", "before", "after"])}
PLACEMENTS = ("none", "before", "after")


def _add(study, block, placement, state, result_state=None):
    attrs = {"bnsearch.block": block, "seed": 100 + block, "bnsearch.phase": "search"}
    if result_state is not None:
        spec = TrialSpec(0, BNConfig(placement=placement), 100 + block, block)
        attrs["bnsearch.result"] = TrialResult(spec, result_state, {"val_loss": [1.0]}).to_json()
    trial = optuna.trial.create_trial(
        params={"placement": placement}, distributions=DIST, user_attrs=attrs, state=state,
        value=0.5 if state is optuna.trial.TrialState.COMPLETE else None,
    )  # fmt: skip
    study.add_trial(trial)
    return study.trials[-1].number


@pytest.fixture
def study(tmp_path):
    return optuna.create_study(storage=f"sqlite:///{tmp_path / 'o.db'}")


def test_interrupted_trials_are_retried_and_missing_placements_created(study):
    complete, fail = optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL
    for placement in PLACEMENTS:  # block 0: whole
        _add(study, 0, placement, complete, TrialState.COMPLETE)
    _add(study, 1, "before", complete, TrialState.COMPLETE)
    interrupted = _add(study, 1, "after", fail)  # no result: its process was stopped
    # block 1 never got "none": its process died while creating the block
    for placement in PLACEMENTS:  # block 2: "none" diverged, a result of its own
        _add(study, 2, placement, fail if placement == "none" else complete,
             TrialState.FAILED if placement == "none" else TrialState.COMPLETE)  # fmt: skip
    told_then_failed = _add(study, 3, "none", fail, TrialState.COMPLETE)  # Ctrl-C mid-tell
    repairs = blocks_to_complete(study.trials, PLACEMENTS)
    assert [(r.block, r.params["placement"], r.retries) for r in repairs] == [
        (1, "none", None), (1, "after", interrupted),
        (3, "none", told_then_failed), (3, "before", None), (3, "after", None),
    ]  # fmt: skip
    assert all(r.seed == 100 + r.block for r in repairs)
    assert not is_outcome(study.trials[told_then_failed])
    assert is_outcome(study.trials[-2])  # a divergence is an outcome, not retried


def _holds_exclusively(study) -> bool:
    """A second claim waits while a first holds the lock."""
    events = []
    entered = threading.Event()

    def first():
        with claim_lock(study):
            entered.set()
            time.sleep(0.5)
            events.append("first done")

    thread = threading.Thread(target=first)
    thread.start()
    assert entered.wait(120), "the first claim never took the lock"
    with claim_lock(study):
        events.append("second in")
    thread.join()
    return events == ["first done", "second in"]


def test_claims_on_sqlite_take_turns(study):
    assert _holds_exclusively(study)


@pytest.mark.server
@needs_postgres
def test_claims_on_postgresql_take_turns():
    for url in fresh_database():
        storage = optuna.storages.RDBStorage(url)
        study = optuna.create_study(storage=storage, study_name=f"s{datetime.datetime.now():%f}")
        assert _holds_exclusively(study)
        storage.engine.dispose()


@pytest.mark.server
@needs_postgres
def test_the_postgresql_claim_lock_is_held_by_a_transaction_never_by_a_session():
    """What a transaction-pooling pooler (PgBouncer) needs: the lock is held by an open
    transaction of the claim's own connection and goes with its commit, so no server
    session keeps it once the claim is done."""
    import sqlalchemy

    locks = sqlalchemy.text(
        "SELECT l.granted, a.state FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
        "WHERE l.locktype = 'advisory' AND a.datname = :name"
    )
    for url in fresh_database():
        name = url.rsplit("/", 1)[1]
        storage = optuna.storages.RDBStorage(url)
        study = optuna.create_study(storage=storage, study_name="xact")
        admin = sqlalchemy.create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            with claim_lock(study):
                inside = connection.execute(locks, {"name": name}).all()
            after = connection.execute(locks, {"name": name}).all()
        admin.dispose()
        storage.engine.dispose()
        assert [tuple(row) for row in inside] == [(True, "idle in transaction")]
        assert after == []
