"""The one module that reaches into Optuna's private attributes (asking and telling outside
``Study.optimize`` needs a few), so an Optuna upgrade that moves one breaks this file only."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna
    from optuna.distributions import BaseDistribution
    from optuna.trial import FrozenTrial
    from sqlalchemy.engine import Engine


def _storage(study: optuna.Study) -> Any:
    # Any: RDBStorage or Optuna's cache wrapper, whose heartbeat methods BaseStorage lacks.
    return study._storage


def _rdb(study: optuna.Study) -> Any:
    """The study's RDBStorage, under Optuna's cache wrapper if there is one."""
    storage = _storage(study)
    return getattr(storage, "_backend", storage)


def study_id(study: optuna.Study) -> int:
    return study._study_id


def trial_id(trial: optuna.Trial | FrozenTrial) -> int:
    return trial._trial_id


def sql_engine(study: optuna.Study) -> Engine | None:
    """The SQLAlchemy engine of an RDB storage, else None."""
    return getattr(_rdb(study), "engine", None)


def heartbeat_interval(study: optuna.Study) -> int | None:
    return _storage(study).get_heartbeat_interval()


def record_heartbeat(study: optuna.Study, trial_id: int) -> None:
    _storage(study).record_heartbeat(trial_id)


def set_trial_system_attr(
    study: optuna.Study, trial: optuna.Trial | FrozenTrial, key: str, value: Any
) -> None:
    """An attribute Optuna keeps out of sight (optuna-dashboard shows user attributes only;
    ``Trial.set_system_attr`` is deprecated, the storage's method is not)."""
    _storage(study).set_trial_system_attr(trial._trial_id, key, value)


def fail_trial(study: optuna.Study, trial_id: int) -> None:
    from optuna.trial import TrialState

    _storage(study).set_trial_state_values(trial_id, TrialState.FAIL)


def create_running_trial(
    study: optuna.Study,
    params: dict[str, Any],
    distributions: dict[str, BaseDistribution],
    user_attrs: dict[str, Any],
) -> optuna.Trial:
    """A RUNNING trial with its ``params`` and ``user_attrs`` in one insert (no other process
    sees it without them), owned by the caller (unlike ``enqueue_trial``'s). Not
    ``create_trial``, which refuses a value outside its distribution (an enqueued one)."""
    import optuna

    template = optuna.trial.FrozenTrial(
        number=-1,
        state=optuna.trial.TrialState.RUNNING,
        value=None,
        datetime_start=datetime.datetime.now(),
        datetime_complete=None,
        params=params,
        distributions=distributions,
        user_attrs=user_attrs,
        system_attrs={},
        intermediate_values={},
        trial_id=-1,
    )
    new_id = _storage(study).create_new_trial(study_id(study), template_trial=template)
    return optuna.Trial(study, new_id)


def orphaned_trial_ids(study: optuna.Study) -> list[int]:
    """RUNNING trials that never got a heartbeat and started over the grace period ago:
    their process died before its first beat, and Optuna's stale check skips them."""
    storage = _rdb(study)
    grace_period = heartbeat_interval(study) and getattr(storage, "grace_period", None)
    if not grace_period or not hasattr(storage, "scoped_session"):
        return []
    from optuna.storages._rdb import models
    from optuna.trial import TrialState

    cutoff = datetime.datetime.now() - datetime.timedelta(seconds=grace_period)
    with storage.scoped_session() as session:
        trials = (
            session.query(models.TrialModel)
            .filter(models.TrialModel.study_id == study_id(study))
            .filter(models.TrialModel.state == TrialState.RUNNING)
            .all()
        )
        return [
            t.trial_id
            for t in trials
            if not t.heartbeats and t.datetime_start is not None and t.datetime_start < cutoff
        ]


#: RDBStorage's private methods that Optuna's cache wrapper calls; each opens a session.
_SESSION_METHODS = (
    "_create_new_trial",
    "_get_best_trial_id",
    "_get_stale_trial_ids",
    "_get_trials",
    "_set_trial_param",
)


def rdb_storage_wrapping(wrap: Callable[[Callable[..., Any]], Callable[..., Any]]) -> type[Any]:
    """A subclass of ``RDBStorage`` whose every database call (its public methods and the
    private ones Optuna's cache calls) is ``wrap(method)``."""
    import optuna

    base = optuna.storages.RDBStorage
    names = [n for n, m in vars(base).items() if callable(m) and not n.startswith("_")]
    methods = {name: wrap(getattr(base, name)) for name in [*names, *_SESSION_METHODS]}
    return type("RetryingRDBStorage", (base,), methods)
