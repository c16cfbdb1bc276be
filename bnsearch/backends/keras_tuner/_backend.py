"""The Keras Tuner backend: ``random`` and ``bayesian`` run paired blocks (its oracle decides
what to try, bnsearch's engine trains); ``hyperband`` and ``grid`` run Keras Tuner's own search
in a child process, its tuners subclassed to log each trial to MLflow (docs/guides/backends.md)."""

from __future__ import annotations

import contextlib
import ctypes
import gc
import json
import math
import multiprocessing
import os
import queue
import shutil
import signal
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import bnsearch.backends.keras_tuner._adapter as adapter
from bnsearch import errors
from bnsearch._interrupts import install_handlers, raise_if_stopped
from bnsearch._quiet import import_tensorflow_quietly
from bnsearch._reachable import sqlite_path
from bnsearch._redact import redact_url
from bnsearch.backends._base import ResultCallback, StudyReader
from bnsearch.backends._loop import Member, PairedSearcher, confirmation_specs, timeout_reached
from bnsearch.backends.keras_tuner._files import (
    append_result,
    repair_results,
    results_from_project,
    write_atomically,
)
from bnsearch.backends.keras_tuner._your_tuner import paired_oracle_class, trial_config
from bnsearch.config import DEFAULT_STORE_DIR, PAIRED_TUNERS, StudyConfig
from bnsearch.data import Dataset
from bnsearch.engines import fit_arguments
from bnsearch.errors import ConfigError, StudyFailedError, naming_full_disk
from bnsearch.networks import build_model
from bnsearch.stats import Verdict
from bnsearch.tracking import MlflowTracker
from bnsearch.trial import (
    METRICS,
    Phase,
    StoredTrials,
    TrialRecorder,
    TrialResult,
    TrialSpec,
    TrialState,
    keys,
    trial_seed,
)

_STATE_FILE = "bnsearch_study.json"
_BLOCKS_FILE = "bnsearch_blocks.json"
_HYPERBAND_KEYS = ("tuner/epochs", "tuner/initial_epoch", "tuner/bracket", "tuner/round")


def project_dir(config: StudyConfig) -> Path:
    """Where a study's Keras Tuner project lives: next to the MLflow store by default."""
    database = sqlite_path(config.resolved_tracking_uri)
    root = DEFAULT_STORE_DIR if database is None else database.parent
    return config.path_under(root / "keras_tuner")


class _TimeUp(Exception):
    """Keras Tuner's own search reached the study's timeout: it starts no more trials."""


@dataclass
class _LiveTrial:  # a trial in progress
    recorder: TrialRecorder
    run_id: str | None  # None while MLflow is away: the run is written at the trial's end
    gaps: bool = False  # some epochs could not be logged live


# long because it defines the tuner subclass, whose four hooks share the study's tracking
def _tracked_tuner_class(
    base: type,
    config: StudyConfig,
    tracker: MlflowTracker,
    on_result: ResultCallback,
    live: dict[str, _LiveTrial],
) -> type:
    """``base``, a Keras Tuner tuner, logging every trial to MLflow as a bnsearch TrialResult
    (``live``: the trials in progress)."""
    runs_path = project_dir(config) / "bnsearch_runs.json"
    # Each trial's run (None: MLflow was away), for the Hyperband trials that continue it.
    run_ids: dict[str, str | None] = json.loads(runs_path.read_text()) if runs_path.exists() else {}

    deadline = math.inf  # when the search may start no more trials (--timeout)

    class TrackedTuner(base):  # type: ignore[misc, valid-type]
        def on_search_begin(self) -> None:
            nonlocal deadline
            super().on_search_begin()
            deadline = time.monotonic() + (config.timeout or math.inf)

        def pre_create_trial(self) -> None:
            super().pre_create_trial()
            if time.monotonic() >= deadline:
                raise _TimeUp

        def on_trial_begin(self, trial: Any) -> None:
            import keras

            raise_if_stopped()
            super().on_trial_begin(trial)
            # Keeps memory flat over many trials: drop the previous trial's graphs and models.
            keras.backend.clear_session(free_memory=True)
            gc.collect()
            spec = _spec(trial, None, trial_seed(config.seed, int(trial.trial_id)))
            keras.utils.set_random_seed(spec.seed)
            values = trial.hyperparameters.values
            tags = {
                "keras_tuner.trial_id": str(trial.trial_id),
                keys.PHASE: Phase.SEARCH.value,
                keys.PID: str(os.getpid()),
            }
            if (resumed := values.get("tuner/trial_id")) is not None:
                tags[keys.RESUMES_TRIAL] = str(resumed)
                if resumed_run := run_ids.get(str(resumed)):
                    tags[keys.RESUMES_RUN] = resumed_run
            run_id = run_ids[str(trial.trial_id)] = tracker.start_trial(spec, tags)
            if extra := {k: values[k] for k in _HYPERBAND_KEYS if k in values}:
                tracker.log_trial_params(run_id, extra)
            live[trial.trial_id] = _LiveTrial(TrialRecorder(spec, "keras"), run_id)

        def on_epoch_end(self, trial: Any, model: Any, epoch: int, logs: Any = None) -> None:
            super().on_epoch_end(trial, model, epoch, logs=logs)
            current = live[trial.trial_id]
            if current.recorder.record_epoch(epoch, logs or {}):
                model.stop_training = True
            epoch_values = {m: values[-1] for m, values in current.recorder.history.items()}
            if not tracker.log_epoch(current.run_id, epoch, epoch_values):
                current.gaps = True
            raise_if_stopped()

        def run_trial(self, trial: Any, *args: Any, **kwargs: Any) -> Any:
            from keras_tuner.errors import FailedTrialError

            histories = super().run_trial(trial, *args, **kwargs)
            if (recorder := live[trial.trial_id].recorder).state is TrialState.FAILED:
                raise FailedTrialError(recorder.reason)
            return histories

        def on_trial_end(self, trial: Any) -> None:
            super().on_trial_end(trial)
            ended = live.pop(trial.trial_id)
            if trial.status != "COMPLETED" and ended.recorder.state is not TrialState.FAILED:
                message = (trial.message or trial.status).strip().splitlines()
                ended.recorder.fail(message[-1] if message else trial.status)
            result = ended.recorder.result()
            # The project first: the result is kept whatever happens to MLflow next.
            append_result(Path(self.project_dir), result)
            logged: Literal["some", "all"] = "some" if ended.gaps else "all"
            tracker.finish_trial(ended.run_id, result, history_logged=logged)
            write_atomically(runs_path, json.dumps(run_ids))
            on_result(result)

    TrackedTuner.__name__ = f"Tracked{base.__name__}"
    return TrackedTuner


def prepare_project(config: StudyConfig, dataset: Dataset) -> Path:
    """The project folder, refusing settings Keras Tuner cannot run and a changed project."""
    if config.tuner == "grid":
        ranged = [
            n for n in ("momentum", "epsilon", "dropout", "learning_rate")
            if not getattr(config.space, n).fixed
        ]  # fmt: skip
        if ranged:
            raise ConfigError(
                f"Keras Tuner's grid needs every numeric parameter fixed, but {', '.join(ranged)} "
                "are ranges; fix them in the space, use --tuner random/bayesian, or Optuna's "
                "--sampler grid."
            )
    folder = project_dir(config)
    expected = {
        "space": config.space.fingerprint(),
        "data_fingerprint": dataset.fingerprint,
        "network": repr(sorted(config.network.as_params().items())),
        "tuner": config.tuner,
    }
    state_file = folder / _STATE_FILE
    if state_file.exists():
        stored = json.loads(state_file.read_text())
        changed = [key for key, value in expected.items() if stored.get(key) != value]
        if changed and not config.allow_changed_study:
            raise ConfigError(
                f"Keras Tuner study {config.resolved_study_name!r} exists with a different "
                f"{changed[0].replace('_', ' ')}; use another --study-name, or pass "
                "--allow-changed-study to start it over."
            )
        if changed:
            shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    # and why its validation rows cannot rank the placements, for a verdict rebuilt later
    state = {**expected, "no_ranking_reason": dataset.degenerate_validation or ""}
    write_atomically(state_file, json.dumps(state))
    return folder


def run_keras_tuner(
    config: StudyConfig,
    dataset: Dataset,
    tracker: MlflowTracker,
    on_result: ResultCallback | None,
    log: Callable[[str], None],
) -> list[TrialResult]:
    """Keras Tuner's own search (Hyperband: one iteration; grid: ``trials_per_run``) in a
    child process (memory stays flat; a reloaded grid oracle proposes nothing in a second
    process)."""
    if config.trials_per_run <= 0:
        return []
    context = multiprocessing.get_context("spawn")
    messages = context.Queue()
    child = context.Process(
        target=_child_main,
        args=(config, dataset, tracker.parent_run_id, messages),
        name="bnsearch-keras-tuner",
    )
    child.start()
    batch: list[TrialResult] = []
    try:
        while True:
            raise_if_stopped()  # a swallowed Ctrl-C still stops the child within a second
            alive = child.is_alive()  # before waiting: it may finish while we wait
            try:
                kind, payload = messages.get(timeout=1)
            except queue.Empty:
                if alive:
                    continue
                kind, payload = "died", child.exitcode
            if kind != "result":
                break
            batch.append(TrialResult.from_json(payload))
            if on_result is not None:
                on_result(batch[-1])
    except KeyboardInterrupt:
        _stop_child(child)
        raise
    child.join()
    if kind == "done":
        if payload == "timeout":
            log(timeout_reached(config.timeout))
        return batch
    if kind == "interrupted":
        raise KeyboardInterrupt
    if kind == "error":
        name, message, trace = payload
        error_type = getattr(errors, name, None)
        if isinstance(error_type, type) and issubclass(error_type, errors.BnsearchError):
            raise error_type(message)
        raise RuntimeError(f"the Keras Tuner process failed: {name}: {message}\n{trace}")
    raise StudyFailedError(
        f"the Keras Tuner process died (exit code {payload}) after {len(batch)} trial(s) of "
        "its group; they are recorded. Check memory (dmesg) and rerun to continue the study."
    )


def _stop_child(child: Any) -> None:
    """Give the child the Ctrl-C it may not have had so it ends its runs; kill it if need be."""
    child.join(timeout=2)
    if child.is_alive():
        with contextlib.suppress(ProcessLookupError):
            os.kill(child.pid, signal.SIGINT)
        child.join(timeout=60)
    if child.is_alive():
        child.kill()
        child.join()


def _child_main(
    config: StudyConfig, dataset: Dataset, parent_run_id: str | None, messages: Any
) -> None:
    # Linux: stop when bnsearch is killed (prctl(PR_SET_PDEATHSIG, SIGKILL)).
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)
    install_handlers()
    import_tensorflow_quietly()
    try:
        tracker = MlflowTracker(config.resolved_tracking_uri, config.resolved_study_name)
        tracker.connect()
        tracker.parent_run_id = parent_run_id
        _search(config, dataset, tracker, lambda r: messages.put(("result", r.to_json())))
        messages.put(("done", None))
    except _TimeUp:  # every trial it started has ended and is recorded
        messages.put(("done", "timeout"))
    except KeyboardInterrupt:
        messages.put(("interrupted", None))
    except BaseException as error:  # noqa: BLE001 - every error goes back to the parent
        messages.put(("error", (type(error).__name__, str(error), traceback.format_exc())))


def _search(
    config: StudyConfig, dataset: Dataset, tracker: MlflowTracker, on_result: ResultCallback
) -> None:
    import keras_tuner as kt

    folder = project_dir(config)
    network = config.network

    def hypermodel(hp: Any) -> Any:
        bn_config = config.space.from_keras_tuner(hp)
        return build_model(bn_config, dataset.x.shape[1:], dataset.n_classes, network)

    adapter.make_keras_tuner_saves_atomic()
    limits: dict[str, Any] = {"max_epochs": network.epochs, "factor": 3, "hyperband_iterations": 1}
    if config.tuner == "grid":
        limits = {"max_trials": len(results_from_project(folder)) + config.trials_per_run}
    base = kt.Hyperband if config.tuner == "hyperband" else kt.GridSearch
    live: dict[str, _LiveTrial] = {}
    tuner = _tracked_tuner_class(base, config, tracker, on_result, live)(
        hypermodel,
        objective=kt.Objective("val_loss", "min"),
        directory=str(folder.parent),
        project_name=folder.name,
        overwrite=False,
        seed=config.seed,
        # bnsearch records every failure itself; a run of failures ends the search.
        max_consecutive_failed_trials=5,
        **limits,
    )
    try:
        tuner.search(**fit_arguments(dataset.split(network.validation_split), network))
    except RuntimeError:
        # Keras Tuner stops after too many consecutive failures; each one is recorded.
        if not adapter.stopped_on_consecutive_failures(tuner.oracle):
            raise
    except KeyboardInterrupt:
        for trial in live.values():
            tracker.kill_run(trial.run_id, "interrupted")  # None (MLflow away): nothing to end
        raise


def open_oracle(config: StudyConfig, folder: Path) -> Any:
    """The study's paired oracle, reloaded from the project in ``folder`` if it has one."""
    import keras_tuner as kt

    adapter.make_keras_tuner_saves_atomic()
    hyperparameters = kt.HyperParameters()
    config.space.from_keras_tuner(hyperparameters)
    base = kt.oracles.RandomSearchOracle
    if config.tuner == "bayesian":
        base = adapter.screened_bayesian_class(kt.oracles.BayesianOptimizationOracle)

    class ScoredPairedOracle(paired_oracle_class(base)):  # type: ignore[misc]
        def score_trial(self, trial: Any) -> None:  # by its last epoch (as Optuna)
            history = trial.metrics.get_history(self.objective.name)
            trial.score = history[-1].value[-1] if history else float("nan")
            trial.best_step = history[-1].step if history else 0

    oracle = ScoredPairedOracle(
        objective=kt.Objective("val_loss", "min"),
        max_trials=None,
        hyperparameters=hyperparameters,
        seed=config.seed + 1,  # Keras Tuner takes a seed of 0 for "none"
        # bnsearch's own failure policy (stop_after_failures) decides when to stop.
        max_consecutive_failed_trials=2**31,
    )
    oracle.verbose = 0
    adapter.set_project_dir(oracle, folder)
    if (folder / "oracle.json").exists():
        oracle.reload()
    return oracle


def _unpaired_reason(tuner: str) -> str | None:
    if tuner in PAIRED_TUNERS:
        return None
    return (
        f"no verdict: Keras Tuner's {tuner} trials are not paired blocks "
        "(trials differing only in placement); use --tuner random or bayesian, or "
        "--backend optuna, for one."
    )


@dataclass
class KerasTunerBackend(PairedSearcher):
    """The project folder is the study's store (one process at a time: the study lock); a
    confirmation member has no trial. Nothing is reclaimed (the oracle reloaded from the
    project retries a killed run's trials) and nothing pruned."""

    folder: Path = field(init=False)  # the project, once open() has prepared it
    oracle: Any = field(default=None, init=False)  # the paired oracle, while run() runs

    @property
    def name(self) -> str:
        return f"Keras Tuner ({self.config.tuner})"

    @property
    def unpaired_reason(self) -> str | None:
        return _unpaired_reason(self.config.tuner)

    @classmethod
    def probe(cls, config: StudyConfig) -> None:
        """A project folder: no server to ask."""

    @classmethod
    def prepare(cls, config: StudyConfig, dataset: Dataset) -> str:
        folder = prepare_project(config, dataset)
        return f"{folder} ({len(results_from_project(folder))} trials)"

    @classmethod
    def read(cls, config: StudyConfig) -> StudyReader:
        folder = project_dir(config)
        if not folder.is_dir():
            raise ConfigError(
                f"no Keras Tuner project for study {config.resolved_study_name!r} at {folder} "
                f"(tracking store {redact_url(config.resolved_tracking_uri)}); pass "
                "--study-name and --tracking-uri as the study was run."
            )
        path = folder / _STATE_FILE
        state = json.loads(path.read_text()) if path.exists() else {}
        return StudyReader(
            tags={"keras_tuner.study": config.resolved_study_name},
            data_fingerprint=str(state.get("data_fingerprint", "unknown")),
            unpaired_reason=_unpaired_reason(state.get("tuner") or config.tuner),
            no_ranking_reason=state.get("no_ranking_reason") or None,
            stored_trials=lambda: StoredTrials(results_from_project(folder)),
            importances=lambda: {},
        )

    def open(self) -> list[str]:
        self.folder = prepare_project(self.config, self.dataset)
        repaired = repair_results(self.folder)
        self._existing = len(results_from_project(self.folder))
        return [repaired] if repaired else []

    def store_tags(self) -> dict[str, str]:
        return {
            "keras_tuner.study": self.config.resolved_study_name,
            "keras_tuner.project": str(self.folder),
        }

    def up_to_date(self) -> str | None:
        return None if self.config.fit_only else super().up_to_date()

    def budget(self) -> tuple[int, str]:
        if self.config.fit_only:
            return self.config.trials_per_run, f"{self.config.trials_per_run} trials"
        return super().budget()

    def run(
        self, on_result: ResultCallback | None, log: Callable[[str], None]
    ) -> list[TrialResult]:
        if self.config.fit_only:
            return run_keras_tuner(self.config, self.dataset, self.tracker, on_result, log)
        self.oracle = open_oracle(self.config, self.folder)
        return super().run(on_result, log)

    def results(self) -> list[TrialResult]:
        return results_from_project(self.folder)

    def stored_trials(self) -> StoredTrials:
        return StoredTrials(self.results())  # one process at a time: none is in flight

    def importances(self) -> dict[str, float]:
        return {}

    def record_verdict(self, verdict: Verdict) -> None:
        """Nothing: a Keras Tuner project has no viewer of its own."""

    # The paired search's hooks (PairedSearcher), on the project's oracle.

    def _writing(self) -> contextlib.AbstractContextManager[None]:
        return naming_full_disk(f"the Keras Tuner project {self.folder}", self.folder)

    def search_trials(self) -> int:
        return sum(r.spec.phase == Phase.SEARCH for r in self.results())

    def ask_batch(self, room: int, wanted: int | None) -> list[Member]:
        """The oracle's retries first, then whole new blocks (kept in the blocks file)."""
        placements = self.config.space.placement
        if self.config.target_trials is not None:
            wanted = self.config.target_trials - self.search_trials()
        room = min(room, math.ceil(max(wanted or 0, 0) / len(placements)) * len(placements))
        path = self.folder / _BLOCKS_FILE
        blocks: dict[str, list[int]] = json.loads(path.read_text()) if path.exists() else {}
        asked: list[Member] = []
        with self._writing():
            while len(asked) < room and (not asked or len(asked) + len(placements) <= room):
                first = self.oracle.create_trial(f"bnsearch-{len(asked)}")
                if first.status != "RUNNING":
                    break  # the oracle has nothing more to try
                if first.trial_id in blocks:  # a trial a killed run left in flight
                    asked.append(Member(first, _spec(first, *blocks[first.trial_id])))
                    continue
                block = int(first.trial_id)
                seed = trial_seed(self.config.seed, block)
                # its siblings, queued by the oracle when it proposed it
                members = [first] + [
                    self.oracle.create_trial(f"bnsearch-{len(asked) + 1 + i}")
                    for i in range(len(placements) - 1)
                ]
                for trial in members:
                    blocks[trial.trial_id] = [block, seed]
                    asked.append(Member(trial, _spec(trial, block, seed)))
                write_atomically(path, json.dumps(blocks))
        return asked

    def ask_confirmation(self, best: list[TrialResult]) -> list[Member]:
        """One round numbered clear of the oracle's trial ids."""
        round_id = 1_000_000 + len(self.results())
        return [Member(None, s) for s in confirmation_specs(self.config, round_id, best)]

    def run_tags(self, member: Member) -> dict[str, str]:
        tags = {keys.PHASE: member.spec.phase, keys.BACKEND: "keras-tuner"}
        if member.trial is not None:
            tags["keras_tuner.trial_id"] = str(member.trial.trial_id)
        return tags

    def tell(self, member: Member, result: TrialResult) -> bool:
        trial = member.trial
        with self._writing():
            if trial is not None:
                if result.state is TrialState.COMPLETE:
                    for step in range(result.epochs_trained):
                        values = {
                            m: result.history[m][step] for m in METRICS if m in result.history
                        }
                        self.oracle.update_trial(trial.trial_id, values, step=step)
                    trial.status = "COMPLETED"
                else:
                    trial.status = "FAILED"
                    trial.message = result.fail_reason or result.state.value
                self.oracle.end_trial(trial)
            append_result(self.folder, result)
        return True

    def batch_told(self, members: list[Member]) -> None:
        if any(member.trial is not None for member in members):
            with self._writing():
                self.oracle.save()  # end_trial saves before it lets go of the trial: once more

    def abandon(self, members: list[Member]) -> str:
        n = len(members)
        what = "the trial in flight stays" if n == 1 else f"the {n} trials in flight stay"
        return f"{what} in the Keras Tuner project and the next run retries them"


def _spec(trial: Any, block: int | None, seed: int) -> TrialSpec:
    return TrialSpec(int(trial.trial_id), trial_config(trial), seed, block, Phase.SEARCH)
