"""A child run per trial: created when the trial starts, its epochs logged as it trains, its
outcome written and the run ended when it is done.

Best effort: a trial whose run cannot be written (MLflow away) trains on, is counted in
``pending``, and :meth:`MlflowTracker.sync` writes the run later with the same functions.
Runs are written by explicit run id, never through MLflow's thread-local active run, so
several trials can be open at once.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from bnsearch.stats import RUNAWAY
from bnsearch.tracking._connection import Connection, TrackingUnavailable, tags_equal
from bnsearch.trial import METRICS, TASK_METRICS, Phase, TrialResult, TrialSpec, TrialState, keys

if TYPE_CHECKING:
    from mlflow.entities import Param

HistoryLogged = Literal["none", "some", "all"]

STATUS = {
    TrialState.COMPLETE: "FINISHED",
    TrialState.PRUNED: "KILLED",
    TrialState.FAILED: "FAILED",
}


class TrialRuns:
    """The tracker's trial runs (a mixin of :class:`MlflowTracker`)."""

    connection: Connection
    parent_run_id: str | None
    pending: int
    # Runs created while their parameters could not be written (MLflow went away between
    # the two calls): the parameters go with the outcome.
    _without_params: set[str]

    def start_trial(
        self, spec: TrialSpec, extra_tags: Mapping[str, str] | None = None
    ) -> str | None:
        """Create the trial's run with its parameters; None when MLflow is away."""
        try:
            run_id = _create_run(self.connection, spec, self.parent_run_id, extra_tags)
        except TrackingUnavailable:
            return None
        if not self.connection.best_effort("log_batch", run_id, params=trial_params(spec)):
            self._without_params.add(run_id)
        return run_id

    def log_trial_params(self, run_id: str | None, params: Mapping[str, Any]) -> None:
        """Params a trial gets beyond its configuration (Keras Tuner's Hyperband keys)."""
        if run_id is not None:
            self.connection.best_effort("log_batch", run_id, params=mlflow_params(params))

    def log_epoch(self, run_id: str | None, step: int, metrics: Mapping[str, float]) -> bool:
        """One epoch's finite metrics; False when they could not be written."""
        from mlflow.entities import Metric

        if run_id is None:
            return False
        now = int(time.time() * 1000)
        finite = [Metric(k, v, now, step) for k, v in metrics.items() if math.isfinite(v)]
        return self.connection.best_effort("log_batch", run_id, metrics=finite)

    def finish_trial(
        self,
        run_id: str | None,
        result: TrialResult,
        history_logged: HistoryLogged = "none",
        extra_tags: Mapping[str, str] | None = None,
    ) -> bool:
        """Write the trial's outcome and end its run (created now if MLflow was away at the
        trial's start); False, and one more pending run for :meth:`sync`, when MLflow is
        away."""
        connection = self.connection
        try:
            if run_id is None:
                run_id = create_finished_run(connection, result, self.parent_run_id, extra_tags)
            else:
                if run_id in self._without_params:
                    connection.call("log_batch", run_id, params=trial_params(result.spec))
                    self._without_params.discard(run_id)
                write_outcome(connection, run_id, result, history_logged)
        except TrackingUnavailable:
            self.pending += 1
            return False
        return True

    def kill_run(self, run_id: str | None, reason: str, status: str = "KILLED") -> None:
        """End a run that was interrupted or abandoned, keeping what it logged (tagged
        FAILED with ``reason``; best effort)."""
        from mlflow.entities import RunTag

        if run_id is None:
            return
        tags = [RunTag(keys.FAIL_REASON, reason), RunTag(keys.STATE, "FAILED")]
        if self.connection.best_effort("log_batch", run_id, tags=tags):
            self.connection.best_effort("set_terminated", run_id, status=status)

    def trial_run_id(self, number: int) -> str | None:
        """The run of trial ``number`` that holds its outcome (the latest, if several)."""
        query = tags_equal((keys.KIND, "trial"), (keys.TRIAL_NUMBER, number))
        runs = [r for r in self.connection.search(query) if r.info.status != "RUNNING"]
        return max(runs, key=lambda r: r.info.start_time).info.run_id if runs else None


def create_finished_run(
    connection: Connection,
    result: TrialResult,
    parent_run_id: str | None,
    extra_tags: Mapping[str, str] | None,
) -> str:
    """A run for a trial that has none, written and ended in one go; its id."""
    run_id = _create_run(connection, result.spec, parent_run_id, extra_tags)
    connection.call("log_batch", run_id, params=trial_params(result.spec))
    write_outcome(connection, run_id, result, history_logged="none")
    return run_id


def write_outcome(
    connection: Connection, run_id: str, result: TrialResult, history_logged: HistoryLogged
) -> None:
    """The history the run lacks, final and best values, state and engine; then end it."""
    from mlflow.entities import Metric, RunTag

    now = int(time.time() * 1000)
    metrics = [
        Metric(name, float(value), now, step)
        for name, step, value in _missing_steps(connection, run_id, result, history_logged)
    ]
    # The runs table's columns: a regression's second metric is its val_mae (its history
    # has it; its val_accuracy is NaN, so not logged).
    task = [m for m in TASK_METRICS if m.startswith("val_") and m in result.history]
    for name in ("val_loss", "val_accuracy", *task):
        final, best = result.final(name), result.best(name)
        # Not a run-away (a diverged trial's last epoch, 1e24): no summary of one.
        if final is not None and math.isfinite(final) and abs(final) < RUNAWAY:
            metrics.append(Metric(f"final_{name}", final, now, 0))
        if best is not None and abs(best) < RUNAWAY:
            metrics.append(Metric(f"best_{name}", best, now, 0))
    metrics.append(Metric("epochs_trained", float(result.epochs_trained), now, 0))
    metrics.append(Metric("wall_time_s", result.wall_time_s, now, 0))
    tags = [
        RunTag(keys.STATE, result.state.value),
        RunTag(keys.ENGINE, result.engine),
    ]
    if result.fail_reason:
        tags.append(RunTag(keys.FAIL_REASON, result.fail_reason[:5000]))
    for start in range(0, len(metrics), 900):
        chunk = metrics[start : start + 900]
        connection.call("log_batch", run_id, metrics=chunk, tags=tags if start == 0 else [])
    connection.call("set_terminated", run_id, status=STATUS[result.state])


def _missing_steps(
    connection: Connection, run_id: str, result: TrialResult, history_logged: HistoryLogged
) -> list[tuple[str, int, float]]:
    wanted = [
        (name, step, value)
        for name in (*METRICS, *TASK_METRICS)
        for step, value in enumerate(result.history.get(name, []))
        if math.isfinite(value)
    ]
    if history_logged != "some":
        return wanted if history_logged == "none" else []
    held = {
        (name, metric.step)
        for name in (*METRICS, *TASK_METRICS)
        if name in result.history
        for metric in connection.call("get_metric_history", run_id, name)
    }
    return [entry for entry in wanted if entry[:2] not in held]


def _create_run(
    connection: Connection,
    spec: TrialSpec,
    parent_run_id: str | None,
    extra: Mapping[str, str] | None,
) -> str:
    prefix = "trial" if spec.phase == Phase.SEARCH else str(spec.phase)
    tags = {
        "mlflow.parentRunId": parent_run_id or "",
        keys.KIND: "trial",
        keys.TRIAL_NUMBER: str(spec.number),
        keys.SEED: str(spec.seed),
        keys.STATE: "RUNNING",
        "placement": spec.config.placement,
        **({keys.BLOCK: str(spec.block)} if spec.block is not None else {}),
        **(extra or {}),
    }
    run_name = f"{prefix}-{spec.number:04d}-{spec.config.placement}"
    run = connection.call("create_run", connection.experiment(), run_name=run_name, tags=tags)
    return run.info.run_id


def trial_params(spec: TrialSpec) -> list[Param]:
    """A trial's parameters as MLflow params: its configuration and its seed."""
    return mlflow_params({**spec.config.as_params(), "seed": spec.seed})


def mlflow_params(values: Mapping[str, Any]) -> list[Param]:
    """``values`` as MLflow params (floats written with ``repr``)."""
    from mlflow.entities import Param

    # float() first: a NumPy float's repr is np.float64(...)
    return [Param(k, repr(float(v)) if isinstance(v, float) else str(v)) for k, v in values.items()]
