"""The Optuna backend: decides what to try next with an Optuna sampler and pruner.

It asks a batch of trials (one for the Keras engine), turns each into a TrialSpec through
:meth:`SearchSpace.suggest`, lets the engine train them, and tells Optuna each outcome. Every
trial stores its TrialResult as the user attribute ``bnsearch.result`` and its MLflow run id
as ``mlflow_run_id``; the MLflow run carries the trial number, so either leads to the other.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
import warnings
from collections.abc import Callable
from typing import Any

from bnsearch.backends._claims import (
    RESULT_ATTR,
    Repair,
    blocks_to_complete,
    claim_lock,
    is_outcome,
    orphaned_trial_ids,
    rdb_storage,
)
from bnsearch.config import StudyConfig
from bnsearch.data import Dataset
from bnsearch.engines import Engine
from bnsearch.errors import ConfigError, StoreError
from bnsearch.interrupts import raise_if_stopped
from bnsearch.results import TrialResult, TrialSpec, TrialState
from bnsearch.space import BNConfig
from bnsearch.tracking import MlflowTracker

__all__ = [
    "best_per_placement",
    "close_stale_trials",
    "closed_message",
    "open_study",
    "results_from_study",
    "run_confirmation",
    "run_trials",
    "search_trial_count",
    "trial_seed",
]

RUN_ID_ATTR = "mlflow_run_id"


def trial_seed(study_seed: int, trial_number: int) -> int:
    """A distinct, reproducible seed per trial of a study."""
    return (study_seed * 1_000_003 + trial_number * 7_919 + 1) % (2**31 - 1)


def _sampler(config: StudyConfig, n_existing: int) -> Any:
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


def _pruner(config: StudyConfig) -> Any:
    import optuna

    if config.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=4)
    if config.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=2, max_resource=config.network.epochs)
    return optuna.pruners.NopPruner()


def open_study(config: StudyConfig, dataset: Dataset) -> Any:
    """Create the study or load the existing one of that name, refusing a silent change of
    search space or data."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # bnsearch beats for its trials itself (see _Heartbeat), outside Study.optimize.
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
    warnings.filterwarnings("ignore", message="Argument ``heartbeat_interval``")
    warnings.filterwarnings("ignore", message="Argument ``grace_period``")
    url = config.resolved_storage
    if url.startswith("sqlite:///"):
        from pathlib import Path

        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    try:
        storage = optuna.storages.RDBStorage(
            url,
            heartbeat_interval=config.heartbeat_interval,
            grace_period=config.grace_period,
        )
        existing = [
            s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)
        ]
    except Exception as error:  # noqa: BLE001 - any storage failure means the same to a user
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise StoreError(
            f"cannot use the Optuna storage {url} ({message}); check --storage."
        ) from error
    name = config.resolved_study_name
    n_existing = 0
    if name in existing:
        loaded = optuna.load_study(study_name=name, storage=storage)
        n_existing = len(loaded.trials)
    study = optuna.create_study(
        study_name=name,
        storage=storage,
        sampler=_sampler(config, n_existing),
        pruner=_pruner(config),
        direction="minimize",
        load_if_exists=True,
    )
    expected = {
        "bnsearch.space": config.space.fingerprint(),
        "bnsearch.data_fingerprint": dataset.fingerprint,
        "bnsearch.network": repr(sorted(config.network.as_params().items())),
    }
    if name in existing and not config.allow_changed_study:
        for key, value in expected.items():
            stored = study.user_attrs.get(key)
            if stored is not None and stored != value:
                what = key.removeprefix("bnsearch.").replace("_", " ")
                raise ConfigError(
                    f"study {name!r} exists with a different {what}; use another --study-name, "
                    "or pass --allow-changed-study to add trials anyway."
                )
    for key, value in expected.items():
        study.set_user_attr(key, value)
    return study


class _Heartbeat:
    """Records Optuna heartbeats for the trials in flight from a background thread.

    Optuna only beats inside ``study.optimize``; bnsearch asks and tells itself, so it beats
    here. A process killed with SIGKILL stops beating, and the next run or any worker fails
    its trials once ``grace_period`` has passed (:func:`close_stale_trials`) and retries
    them.
    """

    def __init__(self, study: Any, trials: list[Any]) -> None:
        import threading

        self._storage = study._storage
        self._ids = [t._trial_id for t in trials]
        self._interval = self._storage.get_heartbeat_interval()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True, name="bnsearch-beat")

    def _beat(self) -> None:
        while not self._stop.wait(self._interval):
            for trial_id in self._ids:
                # A missed beat must not stop training; the next one will do.
                with contextlib.suppress(Exception):
                    self._storage.record_heartbeat(trial_id)

    def __enter__(self) -> _Heartbeat:
        if self._interval:
            for trial_id in self._ids:
                self._storage.record_heartbeat(trial_id)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()


def closed_message(closed: int) -> str:
    """What a run says after :func:`close_stale_trials` closed ``closed`` trials."""
    return (
        f"bnsearch: closed {closed} trial(s) left RUNNING by a process that died; they are "
        "marked FAILED in Optuna and MLflow and will be retried."
    )


def close_stale_trials(study: Any, tracker: MlflowTracker) -> int:
    """Fail trials left RUNNING by a process that died (no heartbeat for ``grace_period``)
    and end their MLflow runs as FAILED; return how many there were."""
    import optuna

    running = {
        t._trial_id: t
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    }
    if not running:
        return 0
    optuna.storages.fail_stale_trials(study)
    grace = study._storage.get_heartbeat_interval() and getattr(
        rdb_storage(study), "grace_period", None
    )
    if grace:
        for trial_id in orphaned_trial_ids(study, grace):
            with contextlib.suppress(Exception):  # another worker may fail it first
                study._storage.set_trial_state_values(trial_id, optuna.trial.TrialState.FAIL)
    closed = 0
    parents: set[str] = set()
    reason = "stale: its process stopped (no heartbeat within the grace period)"
    # A process can die between creating a trial's run and recording its id on the trial:
    # the run's own trial-number tag (set when it was created) finds it then.
    live_runs = {
        run.data.tags.get("bnsearch.trial_number"): run
        for run in tracker.client.search_runs(
            [tracker.experiment_id],
            "tags.`bnsearch.kind` = 'trial' and attributes.status = 'RUNNING'",
        )
    }
    for trial_id, before in running.items():
        if study._storage.get_trial(trial_id).state is not optuna.trial.TrialState.FAIL:
            continue
        # Optuna refuses attributes on finished trials: the reason goes to MLflow.
        run = live_runs.get(str(before.number))
        if run is not None:
            tracker.kill_run(run.info.run_id, reason, status="FAILED")
            parents.add(run.data.tags.get("mlflow.parentRunId", ""))
        if before.user_attrs.get("bnsearch.parent_run"):
            parents.add(before.user_attrs["bnsearch.parent_run"])
        closed += 1
    parents.discard("")
    for parent in parents:
        # The dead process's study run: close it once none of its trials still runs.
        children = tracker.client.search_runs(
            [tracker.experiment_id],
            f"tags.`mlflow.parentRunId` = '{parent}' and attributes.status = 'RUNNING'",
        )
        if not children and tracker.client.get_run(parent).info.status == "RUNNING":
            tracker.client.set_tag(parent, "bnsearch.fail_reason", reason)
            tracker.client.set_terminated(parent, status="FAILED")
    return closed


def results_from_study(study: Any) -> list[TrialResult]:
    """Every finished trial of the study as a TrialResult, read from the Optuna storage."""
    return [
        TrialResult.from_json(t.user_attrs[RESULT_ATTR])
        for t in study.get_trials(deepcopy=False)
        if RESULT_ATTR in t.user_attrs
    ]


class _EpochSnapshot:
    """A study stand-in for pruners that answers ``get_trials`` from one snapshot per epoch.

    A population reports every member's epoch at once; asking the storage for all trials
    once per member (what ``Trial.should_prune`` does) cost ~0.1 s each on SQLite. Pruners
    compare a trial with *finished* trials, which cannot change during one epoch round, so
    one snapshot per round gives the same decisions.
    """

    def __init__(self, study: Any) -> None:
        self._study = study
        self._epoch: int | None = None
        self._trials: list[Any] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)

    def refresh(self, epoch: int) -> None:
        if epoch != self._epoch:
            self._epoch = epoch
            self._trials = self._study.get_trials(deepcopy=False)

    def get_trials(self, deepcopy: bool = True, states: Any = None) -> list[Any]:
        trials = self._trials if states is None else [t for t in self._trials if t.state in states]
        return copy.deepcopy(trials) if deepcopy else list(trials)

    def should_prune(self, trial: Any, epoch: int, value: float) -> bool:
        """Report ``value`` for ``epoch`` and ask the study's pruner about ``trial``."""
        trial.report(value, epoch)
        self.refresh(epoch)
        current = next((t for t in self._trials if t.number == trial.number), None)
        if current is None:
            return trial.should_prune()
        current = copy.copy(current)
        current.intermediate_values = {**current.intermediate_values, epoch: value}
        return bool(self._study.pruner.prune(self, current))


def _tell(study: Any, trial: Any, result: TrialResult) -> None:
    import optuna

    trial.set_user_attr(RESULT_ATTR, result.to_json())
    if result.state is TrialState.COMPLETE:
        study.tell(trial, result.value)
    elif result.state is TrialState.PRUNED:
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    else:
        trial.set_user_attr("fail_reason", result.fail_reason or "unknown")
        study.tell(trial, state=optuna.trial.TrialState.FAIL)


def _worker_id() -> str:
    """Which process trains a trial: ``host:pid`` (for finding a dead worker's trials)."""
    import os
    import socket

    return f"{socket.gethostname()}:{os.getpid()}"


def _first_beat(study: Any, trial_id: int) -> None:
    """Beat for a trial the moment it exists: Optuna never counts a trial without any
    heartbeat as stale (see :func:`orphaned_trial_ids` for a death before this beat)."""
    if study._storage.get_heartbeat_interval():
        study._storage.record_heartbeat(trial_id)


def _spec_attrs(spec: TrialSpec) -> dict[str, Any]:
    """What every trial records about itself: seed, phase, block and worker."""
    attrs: dict[str, Any] = {
        "seed": spec.seed,
        "bnsearch.phase": spec.phase,
        "bnsearch.worker": _worker_id(),
    }
    if spec.block is not None:
        attrs["bnsearch.block"] = spec.block
    return attrs


def _ask_block(study: Any, config: StudyConfig) -> list[tuple[Any, TrialSpec]]:
    """Ask one trial from the sampler, then one per other placement with the same values.

    The sampler chooses every hyperparameter of the first trial (placement included); the
    other placements are created with the first trial's values, so the block's trials
    differ only in placement and share one seed. Each stays an ordinary Optuna trial, so
    the sampler and the importance evaluators see placement like any other parameter.
    """
    template = study.ask()
    _first_beat(study, template._trial_id)
    first = config.space.suggest(template)
    block = template.number
    seed = trial_seed(config.seed, block)
    spec = TrialSpec(template.number, first, seed, block)
    for key, value in _spec_attrs(spec).items():
        template.set_user_attr(key, value)
    members = [(template, spec)]
    for placement in config.space.placement:
        if placement == first.placement:
            continue
        params = {**template.params, "placement": placement}
        members.append(_claim_trial(study, params, template.distributions, seed, block))
    return members


def _repair(study: Any, repair: Repair) -> tuple[Any, TrialSpec]:
    """A new trial with a failed trial's (or its block's) parameters, seed and block."""
    extra = {} if repair.retries is None else {"bnsearch.retries_trial": repair.retries}
    return _claim_trial(
        study, repair.params, repair.distributions, repair.seed, repair.block, extra
    )


def _claim_trial(
    study: Any,
    params: dict[str, Any],
    distributions: dict[str, Any],
    seed: int,
    block: int,
    extra_attrs: dict[str, Any] | None = None,
    phase: str = "search",
) -> tuple[Any, TrialSpec]:
    """Create a RUNNING trial with fixed ``params`` owned by this process.

    Unlike ``enqueue_trial`` + ``ask``, no other worker sharing the storage can take it from
    the queue, so a worker always trains what it claimed. The trial's seed, block and phase
    are stored in the same insert, so no other process ever sees the trial without them.
    """
    import datetime

    import optuna

    config = BNConfig(**params)
    template = optuna.trial.FrozenTrial(
        number=-1,
        state=optuna.trial.TrialState.RUNNING,
        value=None,
        datetime_start=datetime.datetime.now(),
        datetime_complete=None,
        params=params,
        distributions=distributions,
        user_attrs={
            **_spec_attrs(TrialSpec(-1, config, seed, block, phase)),
            **(extra_attrs or {}),
        },
        system_attrs={},
        intermediate_values={},
        trial_id=-1,
    )
    trial_id = study._storage.create_new_trial(study._study_id, template_trial=template)
    _first_beat(study, trial_id)
    trial = optuna.Trial(study, trial_id)
    return trial, TrialSpec(trial.number, config, seed, block, phase=phase)


def _ask_confirmation(
    study: Any, config: StudyConfig, best: list[TrialResult]
) -> list[tuple[Any, TrialSpec]]:
    """Re-train each placement's best configuration with ``config.confirm_seeds`` fresh
    seeds; the k-th seed is shared by every placement, so the round is paired too."""
    members = []
    round_id = len(study.trials)
    distributions = next(
        t.distributions for t in study.get_trials(deepcopy=False) if "placement" in t.params
    )
    for k in range(config.confirm_seeds):
        seed = trial_seed(config.seed + 104_729, round_id + k)
        for result in best:
            params = result.config.as_params()
            members.append(
                _claim_trial(study, params, distributions, seed, round_id, phase="confirm")
            )
    return members


def search_trial_count(study: Any) -> int:
    """Search-phase trials that count towards ``target_trials``, from any worker: those
    with an outcome (complete, pruned, failed with a result of their own such as a
    divergence) or in flight. Trials lost to an interrupt or a dead worker do not count;
    they are retried in their block (see :func:`blocks_to_complete`)."""
    return sum(
        1
        for t in study.get_trials(deepcopy=False)
        if t.user_attrs.get("bnsearch.phase", "search") == "search" and is_outcome(t)
    )


MAX_CONSECUTIVE_FAILED_BATCHES = 3


def _stop_after_failures(results: list[TrialResult], batch: list[TrialResult]) -> None:
    """Stop a study whose last batches failed entirely, with a summary of the reasons."""
    if batch and any(r.state is not TrialState.FAILED for r in batch):
        return
    failed_run = 0
    for result in reversed(results):
        if result.state is not TrialState.FAILED:
            break
        failed_run += 1
    batches = failed_run / max(len(batch), 1)
    if batches >= MAX_CONSECUTIVE_FAILED_BATCHES:
        from collections import Counter

        from bnsearch.errors import StudyFailedError

        reasons = Counter(
            (r.fail_reason or "unknown").split(" at epoch")[0] for r in results[-failed_run:]
        )
        summary = "; ".join(f"{n}× {reason}" for reason, n in reasons.most_common(3))
        raise StudyFailedError(
            f"stopped after {failed_run} consecutive failed trials ({summary}); check the data "
            "and the learning-rate range."
        )


def best_per_placement(results: list[TrialResult]) -> list[TrialResult]:
    """The completed search trial with the lowest objective for each placement."""
    best: dict[str, TrialResult] = {}
    for result in results:
        if result.spec.phase != "search" or result.value is None:
            continue
        current = best.get(result.config.placement)
        if current is None or result.value < current.value:
            best[result.config.placement] = result
    return list(best.values())


def _train_and_tell(
    study: Any,
    config: StudyConfig,
    dataset: Dataset,
    engine: Engine,
    tracker: MlflowTracker,
    asked: list[tuple[Any, TrialSpec]],
    on_result: Callable[[TrialResult], None] | None,
) -> list[TrialResult]:
    in_flight: list[tuple[Any, TrialSpec, str]] = []
    finished: set[str] = set()
    try:
        for trial, spec in asked:
            tags = {"optuna.study": study.study_name, "bnsearch.phase": spec.phase}
            retried = trial.user_attrs.get("bnsearch.retries_trial")
            if retried is not None:
                tags["bnsearch.retries_trial"] = str(retried)
            run_id = tracker.start_trial(spec, tags)
            trial.set_user_attr(RUN_ID_ATTR, run_id)
            trial.set_user_attr("bnsearch.parent_run", tracker.parent_run_id or "")
            in_flight.append((trial, spec, run_id))
        snapshot = _EpochSnapshot(study)

        def on_epoch(index: int, epoch: int, metrics: dict[str, float]) -> bool:
            raise_if_stopped()
            if in_flight[index][1].phase == "confirm":
                return False
            return snapshot.should_prune(in_flight[index][0], epoch, metrics["val_loss"])

        with _Heartbeat(study, [t for t, _ in asked]):
            outcomes = engine.train([s for _, s, _ in in_flight], dataset, config.network, on_epoch)
        results = []
        for (trial, _, run_id), result in zip(in_flight, outcomes, strict=True):
            _tell(study, trial, result)
            tracker.finish_trial(run_id, result)
            finished.add(run_id)
            results.append(result)
            if on_result is not None:
                on_result(result)
    except BaseException:
        import optuna

        # Nothing in flight stays RUNNING: Optuna fails the trials, MLflow ends the runs.
        for trial, _ in asked:
            study.tell(trial, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
        for _, _, run_id in in_flight:
            if run_id not in finished:
                tracker.kill_run(run_id, "interrupted")
        raise
    return results


def _claim_batch(
    study: Any, config: StudyConfig, capacity: int, wanted: int | None
) -> list[tuple[Any, TrialSpec]]:
    """Under the claim lock: retries first, then new whole blocks, at most ``capacity``
    trials (at least one block). ``wanted`` is this run's remaining budget; with
    ``config.target_trials`` the study's own count decides instead."""
    block_size = len(config.space.placement)
    with claim_lock(study):
        if config.target_trials is not None:
            remaining = config.target_trials - search_trial_count(study)
        else:
            remaining = wanted or 0
        if remaining <= 0:
            return []
        repairs = blocks_to_complete(study, config.space.placement)[: min(capacity, remaining)]
        asked = [_repair(study, repair) for repair in repairs]
        remaining -= len(asked)
        room = (capacity - len(asked)) // block_size if asked else max(1, capacity // block_size)
        for _ in range(min(room, math.ceil(max(remaining, 0) / block_size))):
            asked.extend(_ask_block(study, config))
    return asked


def _running_search_trials(study: Any) -> int:
    import optuna

    running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    return sum(1 for t in running if t.user_attrs.get("bnsearch.phase", "search") == "search")


def run_trials(
    study: Any,
    config: StudyConfig,
    dataset: Dataset,
    engine: Engine,
    tracker: MlflowTracker,
    on_result: Callable[[TrialResult], None] | None = None,
    batch_size: int = 1,
    log: Callable[[str], None] | None = None,
) -> list[TrialResult]:
    """Claim, train and tell until the budget is spent or ``config.timeout`` passed.

    The budget is ``config.n_trials`` trials of this run or, with ``config.target_trials``,
    that many search trials in the study (shared with any other worker; rounded up to whole
    blocks). Trials come in paired blocks (one per placement, see :func:`_ask_block`); a
    batch holds as many whole blocks as fit in ``batch_size`` (at least one). Before each
    batch, trials of dead processes are failed (:func:`close_stale_trials`) and trials
    that failed without a result are retried first (see :mod:`._claims`). With a target,
    a worker that has nothing left to claim waits for the other workers' running trials,
    taking over any whose worker dies, so the study is complete when it returns.
    Ctrl-C fails the trials in flight in Optuna, ends their MLflow runs as KILLED and
    re-raises; the next run retries them.
    """
    started = time.monotonic()
    results: list[TrialResult] = []
    capacity = max(batch_size, len(config.space.placement))
    while config.timeout is None or time.monotonic() - started < config.timeout:
        raise_if_stopped()
        closed = close_stale_trials(study, tracker)
        if closed and log is not None:
            log(closed_message(closed))
        wanted = None if config.target_trials is not None else config.n_trials - len(results)
        asked = _claim_batch(study, config, capacity, wanted)
        if not asked:
            if config.target_trials is None or not _running_search_trials(study):
                break
            time.sleep(max(1, config.heartbeat_interval or 1))
            continue
        batch = _train_and_tell(study, config, dataset, engine, tracker, asked, on_result)
        results.extend(batch)
        _stop_after_failures(results, batch)
    return results


def run_confirmation(
    study: Any,
    config: StudyConfig,
    dataset: Dataset,
    engine: Engine,
    tracker: MlflowTracker,
    on_result: Callable[[TrialResult], None] | None = None,
) -> list[TrialResult]:
    """Re-train each placement's best configuration with fresh seeds (paired by seed)."""
    best = best_per_placement(results_from_study(study))
    if config.confirm_seeds < 1 or not best:
        return []
    asked = _ask_confirmation(study, config, best)
    return _train_and_tell(study, config, dataset, engine, tracker, asked, on_result)
