"""The Optuna study as bnsearch's store: opening it, riding out a dropped database
connection, its fingerprints, reading results back (each trial stores its TrialResult, so a
study is read back without MLflow).

Connections are checked before use and opened with a timeout (:func:`engine_kwargs`);
opening the storage, every storage call (:func:`retrying_storage`) and every claim
(:func:`retry_transient`) is tried again on a transient error, after each delay of
:data:`bnsearch._reachable.DATABASE_RETRY`. A retried call whose first try did commit is
harmless except for creating a trial (the duplicate never beats and is failed as orphaned)
and telling one (refused as finished; the Optuna backend recognises its own result)."""

from __future__ import annotations

import functools
import json
import random
import threading
import time
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import bnsearch.backends.optuna._adapter as adapter
from bnsearch._interrupts import raise_if_stopped
from bnsearch._reachable import DATABASE_RETRY, make_store_folder, opening_alone, probe
from bnsearch._redact import redact_text, redact_url
from bnsearch.backends.optuna._your_objective import STATES, your_trial_result
from bnsearch.config import StudyConfig
from bnsearch.data import Dataset
from bnsearch.errors import ConfigError, StoreError, first_line
from bnsearch.trial import Phase, StoredTrials, TrialResult, keys

if TYPE_CHECKING:
    import optuna
    from optuna.pruners import BasePruner
    from optuna.samplers import BaseSampler
    from optuna.storages import BaseStorage, RDBStorage
    from optuna.trial import FrozenTrial

#: How long opening a database connection may take.
CONNECT_TIMEOUT_S = 8

T = TypeVar("T")


def served(url: str) -> bool:
    """Whether a storage URL names a database server (a SQLite file has no connection to lose)."""
    return not url.startswith("sqlite")


def engine_kwargs(url: str) -> dict[str, Any]:
    """SQLAlchemy engine arguments: live-checked pooled connections and, for PostgreSQL, a
    connection timeout and no server-side prepared statements (a transaction-pooling
    pooler does not keep a client's session, so a prepared statement may be missing)."""
    if not served(url):
        return {}
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if url.startswith("postgresql"):
        from sqlalchemy.engine import make_url

        kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_S}
        if make_url(url).get_driver_name() == "psycopg":  # psycopg 3 (psycopg2 never prepares)
            kwargs["connect_args"]["prepare_threshold"] = None
    return kwargs


def is_transient(error: BaseException) -> bool:
    """Whether ``error`` (or an error it was raised from) is a lost or refused database
    connection rather than a refusal of the request itself."""
    from sqlalchemy import exc

    lost = (exc.OperationalError, exc.InterfaceError, ConnectionError, TimeoutError)
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, lost):
            return True
        if isinstance(current, exc.DBAPIError) and current.connection_invalidated:
            return True
        current = current.__cause__ or current.__context__
    return False


def retry_transient(call: Callable[[], T]) -> T:
    """``call()``, tried again after each delay of ``DATABASE_RETRY`` while it fails transiently."""
    for delay in DATABASE_RETRY.delays_s:
        try:
            return call()
        except Exception as error:
            if not is_transient(error):
                raise
            # Between tries no transaction is open: a stop request held by a deferred
            # section (asking, telling) is honoured here, not after the whole retry.
            raise_if_stopped()
            time.sleep(delay)
    return call()


_DEPTH = threading.local()


def _retried(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def call(storage: Any, *args: Any, **kwargs: Any) -> Any:
        if getattr(_DEPTH, "active", False):
            # Storage methods call one another: only the outermost one retries.
            return method(storage, *args, **kwargs)
        _DEPTH.active = True
        try:
            return retry_transient(lambda: method(storage, *args, **kwargs))
        finally:
            _DEPTH.active = False

    return call


@functools.cache
def retrying_storage() -> type:
    """Optuna's ``RDBStorage`` with every storage call retried on transient errors, checking
    the table schema one connection at a time (:func:`check_schema`)."""
    retrying = adapter.rdb_storage_wrapping(_retried)

    def __init__(self: Any, url: str, *args: Any, **kwargs: Any) -> None:
        retrying.__init__(self, url, *args, skip_compatibility_check=True, **kwargs)
        self.skip_compatibility_check = False
        check_schema(self)

    return type("PoolSafeRDBStorage", (retrying,), {"__init__": __init__})


def check_schema(storage: RDBStorage) -> None:
    """Optuna's schema check, without holding a connection while it opens another (behind a
    pooler, workers opening storages at once would each hold one and wait for a second)."""
    current, head = storage.get_current_version(), storage.get_head_version()
    if current == head:
        return
    import optuna

    fix = (
        "run `optuna storage upgrade --storage $STORAGE_URL`."
        if current in storage.get_all_versions()
        else "install the Optuna that created it, or a later one."
    )
    raise RuntimeError(
        f"the table schema (revision {current}) is not the one Optuna {optuna.__version__} "
        f"uses ({head}); {fix}"
    )


def _sampler(config: StudyConfig, n_existing: int) -> BaseSampler:
    import optuna

    # Offsetting the seed by the trials already in the study keeps a resumed study from
    # replaying the random start-up points of its first run.
    seed = config.seed + n_existing
    if config.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if config.sampler == "grid":
        return optuna.samplers.GridSampler(config.space.grid(), seed=seed)
    if config.sampler == "qmc":
        return optuna.samplers.QMCSampler(seed=seed, warn_independent_sampling=False)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=8)


def _pruner(config: StudyConfig) -> BasePruner:
    import optuna

    if config.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=4)
    if config.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=2, max_resource=config.network.epochs)
    return optuna.pruners.NopPruner()


def _rdb_storage(config: StudyConfig) -> tuple[BaseStorage, list[str]]:
    """The storage and the names of its studies; a StoreError if it cannot be used."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # bnsearch beats for its trials itself (see _claims), outside Study.optimize.
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
    warnings.filterwarnings("ignore", message="Argument ``heartbeat_interval``")
    warnings.filterwarnings("ignore", message="Argument ``grace_period``")
    url = config.resolved_storage
    make_store_folder(url, "Optuna storage", "--storage")
    if url.startswith(("postgresql://", "postgresql+psycopg://")):
        try:
            import psycopg  # noqa: F401
        except ImportError:
            raise StoreError(
                f"the Optuna storage {redact_url(url)} needs the PostgreSQL driver psycopg; "
                "install it with pip install 'bnsearch[postgres]'."
            ) from None

    def connect() -> tuple[BaseStorage, list[str]]:
        kind = retrying_storage() if served(url) else optuna.storages.RDBStorage
        storage = kind(
            url,
            engine_kwargs=engine_kwargs(url),
            heartbeat_interval=config.heartbeat_interval,
            grace_period=config.grace_period,
        )
        return storage, optuna.get_all_study_names(storage)

    try:
        probe(url)  # a server that is not there fails now; one that drops us is retried
        with opening_alone(url):
            return retry_transient(connect) if served(url) else connect()
    except Exception as error:  # noqa: BLE001 - any storage failure means the same to a user
        raise _refused(url, error) from None


def _refused(url: str, error: BaseException) -> StoreError:
    message = redact_text(first_line(error, type(error).__name__), [url])
    return StoreError(
        f"cannot use the Optuna storage {redact_url(url)} ({message}); check --storage."
    )


def probe_storage(config: StudyConfig) -> None:
    """Refuse a storage whose server does not answer, as opening it would, but before a
    study's slow steps (TensorFlow's import); a file storage passes."""
    try:
        probe(config.resolved_storage)
    except ConnectionError as error:
        raise _refused(config.resolved_storage, error) from None


def load_existing_study(config: StudyConfig) -> optuna.Study:
    """An existing study; a ConfigError naming the studies there if none."""
    import optuna

    storage, names = _rdb_storage(config)
    name = config.resolved_study_name
    if name not in names:
        raise ConfigError(
            f"no study {name!r} in {redact_url(config.resolved_storage)}; studies there: "
            f"{', '.join(names) or 'none'} (pass --study-name and --storage)."
        )
    return optuna.load_study(study_name=name, storage=storage)


def open_study(config: StudyConfig, dataset: Dataset) -> optuna.Study:
    """Create the study or load the existing one of that name, refusing a silent change of
    search space, data or network."""
    import optuna

    name = config.resolved_study_name
    study = optuna.create_study(
        study_name=name,
        storage=_rdb_storage(config)[0],
        pruner=_pruner(config),
        direction="minimize",
        load_if_exists=True,
    )
    study.sampler = _sampler(config, len(study.get_trials(deepcopy=False)))
    expected = {
        keys.SPACE: config.space.fingerprint(),
        keys.DATA_FINGERPRINT: dataset.fingerprint,
        keys.NETWORK: repr(sorted(config.network.as_params().items())),
    }
    changed = [k for k, v in expected.items() if study.user_attrs.get(k) not in (None, v)]
    if changed and not config.allow_changed_study:
        what = changed[0].removeprefix("bnsearch.").replace("_", " ")
        raise ConfigError(
            f"study {name!r} exists with a different {what}; use another --study-name, "
            "or pass --allow-changed-study to add trials anyway."
        )
    for key, value in expected.items():
        study.set_user_attr(key, value)
    # for a verdict rebuilt without the data (report, sweep)
    study.set_user_attr(keys.NO_RANKING, dataset.degenerate_validation or "")
    with warnings.catch_warnings():  # set_metric_names is "experimental" in Optuna
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(["final val_loss"])  # not "Objective 0" in optuna-dashboard
    return study


def stored_result(trial: FrozenTrial) -> str | None:
    """The trial's result as JSON: a system attribute (older studies: a user attribute)."""
    return trial.system_attrs.get(keys.RESULT) or trial.user_attrs.get(keys.RESULT)


def results_from_study(study: optuna.Study) -> list[TrialResult]:
    """Every finished trial of the study as a TrialResult (your own objective's from its
    values); a result stored just before its trial was failed is left out."""
    results = []
    for trial in study.get_trials(deepcopy=False):
        stored = stored_result(trial)
        if stored is None:  # a study of your own objective: its blocks, if it has any
            if (yours := your_trial_result(trial)) is not None:
                results.append(yours)
            continue
        result = TrialResult.from_json(stored)
        if STATES.get(trial.state.name) is result.state:
            results.append(result)
    return results


def stored_trials(study: optuna.Study) -> StoredTrials:
    import optuna

    trials = study.get_trials(deepcopy=False)
    return StoredTrials(
        results=results_from_study(study),
        running={t.number for t in trials if t.state is optuna.trial.TrialState.RUNNING},
        parents={
            t.number: t.user_attrs[keys.PARENT_RUN]
            for t in trials
            if t.user_attrs.get(keys.PARENT_RUN)
        },
    )


def is_outcome(trial: FrozenTrial) -> bool:
    """Whether a trial holds a result that counts: finished, in flight, or failed *with* a
    result of its own (it diverged), not by an interrupt or a dead process."""
    import optuna

    if trial.state is not optuna.trial.TrialState.FAIL:
        return True
    stored = stored_result(trial)
    return stored is not None and json.loads(stored).get("state") == "FAILED"


def search_trial_count(trials: list[FrozenTrial]) -> int:
    """The search trials that count towards ``target_trials``."""
    return sum(
        t.user_attrs.get(keys.PHASE, Phase.SEARCH) == Phase.SEARCH and is_outcome(t) for t in trials
    )


#: The importance evaluator's seed (fANOVA fits a random forest).
IMPORTANCE_SEED = 0
#: The most completed trials the importances are computed from (a seeded sample beyond: the
#: same shares, the Benchmarks page shows).
IMPORTANCE_MAX_TRIALS = 300


def study_importances(study: optuna.Study) -> dict[str, float]:
    """Seeded fANOVA importance of each hyperparameter over the completed trials (not
    PED-ANOVA, which on the default study gave placement no share against the verdict)."""
    import optuna

    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if len(complete) < 4:
        return {}
    if len(complete) > IMPORTANCE_MAX_TRIALS:
        # A seeded sample in a study of its own in memory (without Optuna's INFO line).
        sample = random.Random(IMPORTANCE_SEED).sample(complete, IMPORTANCE_MAX_TRIALS)
        verbosity = optuna.logging.get_verbosity()
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        try:
            study = optuna.create_study(direction="minimize")
        finally:
            optuna.logging.set_verbosity(verbosity)
        study.add_trials(sample)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            evaluator = optuna.importance.FanovaImportanceEvaluator(seed=IMPORTANCE_SEED)
            found = optuna.importance.get_param_importances(study, evaluator=evaluator)
    except (ValueError, RuntimeError):
        # e.g. a parameter that never varied; the verdict stands without importances.
        return {}
    return {name: float(value) for name, value in found.items()}
