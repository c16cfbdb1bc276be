"""A child run per trial, and making MLflow agree with the backend's store (sync). Best
effort: a run MLflow missed is counted in ``pending`` for sync. Runs are written by run id,
never through MLflow's thread-local active run, so several trials can be open at once."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from bnsearch.stats import RUNAWAY
from bnsearch.tracking._connection import Connection, TrackingUnavailable, as_metrics, tags_equal
from bnsearch.trial import (
    METRICS,
    TASK_METRICS,
    Phase,
    StoredTrials,
    TrialResult,
    TrialSpec,
    TrialState,
    keys,
    process_alive,
)

if TYPE_CHECKING:
    from mlflow.entities import Param, Run

HistoryLogged = Literal["none", "some", "all"]

STATUS = {TrialState.COMPLETE: "FINISHED", TrialState.PRUNED: "KILLED", TrialState.FAILED: "FAILED"}
_ABANDONED = "abandoned: its process ended before the trial did"
_RUNNING = " and attributes.status = 'RUNNING'"


@dataclass
class SyncReport:
    """What :meth:`TrialRuns.sync` changed."""

    created: int = 0
    completed: int = 0
    closed: int = 0

    def message(self) -> str | None:
        if not (self.created or self.completed or self.closed):
            return None
        return (
            f"bnsearch: MLflow caught up with the study's store: {self.created} trial runs "
            f"created, {self.completed} completed from stored results, {self.closed} "
            "abandoned runs ended."
        )


class TrialRuns(Connection):
    """The tracker's trial runs and their sync (a part of :class:`MlflowTracker`)."""

    def start_trial(
        self, spec: TrialSpec, extra_tags: Mapping[str, str] | None = None
    ) -> str | None:
        """Create the trial's run with its parameters; None when MLflow is away."""
        try:
            run_id = self._create_run(spec, self.parent_run_id, extra_tags)
        except TrackingUnavailable:
            return None
        if not self.best_effort("log_batch", run_id, params=trial_params(spec)):
            self._without_params.add(run_id)
        return run_id

    def log_trial_params(self, run_id: str | None, params: Mapping[str, Any]) -> None:
        """Params a trial gets beyond its configuration (Keras Tuner's Hyperband keys)."""
        if run_id is not None:
            self.best_effort("log_batch", run_id, params=mlflow_params(params))

    def log_epoch(self, run_id: str | None, step: int, metrics: Mapping[str, float]) -> bool:
        """One epoch's finite metrics; False when not written."""
        if run_id is None:
            return False
        rows = [(name, value, step) for name, value in metrics.items()]
        return self.best_effort("log_batch", run_id, metrics=as_metrics(rows))

    def finish_trial(
        self,
        run_id: str | None,
        result: TrialResult,
        history_logged: HistoryLogged = "none",
        extra_tags: Mapping[str, str] | None = None,
    ) -> bool:
        """Write the trial's outcome and end its run (created now if MLflow was away at its
        start); False, and one more ``pending`` run, when MLflow is away."""
        try:
            if run_id is None:
                run_id = self._create_run(result.spec, self.parent_run_id, extra_tags)
                history_logged = "none"
                self._without_params.add(run_id)
            self._write_outcome(run_id, result, history_logged, run_id in self._without_params)
        except TrackingUnavailable:
            self.pending += 1
            return False
        self._without_params.discard(run_id)
        return True

    def kill_run(self, run_id: str | None, reason: str, status: str = "KILLED") -> None:
        """End an interrupted or abandoned run, tagged FAILED with ``reason`` (best effort)."""
        if run_id is not None:
            with contextlib.suppress(TrackingUnavailable):
                self._end_failed(run_id, reason, status)

    def trial_run_id(self, number: int) -> str | None:
        """The run of trial ``number`` that holds its outcome (the latest, if several)."""
        query = tags_equal((keys.KIND, "trial"), (keys.TRIAL_NUMBER, number))
        runs = [r for r in self.search(query) if r.info.status != "RUNNING"]
        return max(runs, key=lambda r: r.info.start_time).info.run_id if runs else None

    def sync(self, read_store: Callable[[], StoredTrials]) -> SyncReport:
        """Make MLflow agree with the study's store: each stored result gets exactly one
        ended run of its state (created, or completed from a run left RUNNING); a RUNNING
        run whose trial or study process is gone ends FAILED. ``read_store`` is called after
        MLflow's runs are read, so a trial claimed meanwhile is seen in flight."""
        report = SyncReport()
        by_number: dict[str, list[Run]] = {}
        for run in self.search(tags_equal((keys.KIND, "trial"))):
            by_number.setdefault(run.data.tags.get(keys.TRIAL_NUMBER, ""), []).append(run)
        store = read_store()
        written: set[str] = set()
        for result in store.results:
            own = by_number.get(str(result.spec.number), [])
            if any(run.info.status == STATUS[result.state] for run in own):
                continue
            open_run = next((run for run in own if run.info.status == "RUNNING"), None)
            if open_run is not None:
                # Created just before an outage cut its parameters off: they go with it.
                cut = any(p.key not in open_run.data.params for p in trial_params(result.spec))
                self._write_outcome(open_run.info.run_id, result, "some", params=cut)
                written.add(open_run.info.run_id)
                report.completed += 1
            else:
                parent = store.parents.get(result.spec.number) or self.parent_run_id
                run_id = self._create_run(result.spec, parent, {keys.BACKFILLED: "true"})
                self._write_outcome(run_id, result, "none", params=True)
                report.created += 1
        in_flight = {str(number) for number in store.running}
        abandoned = [
            run.info.run_id
            for number, own in by_number.items()
            if number not in in_flight
            for run in own
            if run.info.status == "RUNNING" and run.info.run_id not in written
        ]
        # And the RUNNING study runs of this machine's processes that no longer exist.
        query = tags_equal((keys.KIND, "study"), (keys.HOST, socket.gethostname())) + _RUNNING
        abandoned += [
            run.info.run_id
            for run in self.search(query)
            if run.info.run_id != self.parent_run_id
            and not process_alive(run.data.tags.get(keys.PID, ""))
        ]
        for run_id in abandoned:
            self._end_failed(run_id)
        report.closed += len(abandoned)
        self.pending = 0
        return report

    def fail_abandoned_runs(
        self, trial_numbers: Iterable[int], parent_run_ids: Iterable[str], reason: str
    ) -> None:
        """End the runs of trials whose process died, and each parent run among theirs (and
        ``parent_run_ids``) left with no running child, FAILED with ``reason``."""
        # A process can die between creating a trial's run and recording its id on the
        # trial: the run's own trial-number tag (set when it was created) finds it then.
        query = tags_equal((keys.KIND, "trial")) + _RUNNING
        live = {run.data.tags.get(keys.TRIAL_NUMBER): run for run in self.search(query)}
        parents = set(parent_run_ids)
        for number in trial_numbers:
            run = live.get(str(number))
            if run is not None:
                self.kill_run(run.info.run_id, reason, status="FAILED")
                parents.add(run.data.tags.get("mlflow.parentRunId", ""))
        parents.discard("")
        for parent in parents:
            children = self.search(tags_equal(("mlflow.parentRunId", parent)) + _RUNNING)
            if not children and self.call("get_run", parent).info.status == "RUNNING":
                self.call("set_tag", parent, keys.FAIL_REASON, reason)
                self.call("set_terminated", parent, status="FAILED")

    def _end_failed(self, run_id: str, reason: str = _ABANDONED, status: str = "FAILED") -> None:
        from mlflow.entities import RunTag

        tags = [RunTag(keys.FAIL_REASON, reason), RunTag(keys.STATE, "FAILED")]
        self.call("log_batch", run_id, tags=tags)
        self.call("set_terminated", run_id, status=status)

    def _write_outcome(
        self, run_id: str, result: TrialResult, logged: HistoryLogged, params: bool = False
    ) -> None:
        """Write what the run lacks (``logged``: of its history) and end it."""
        from mlflow.entities import RunTag

        summary = {"epochs_trained": result.epochs_trained, "wall_time_s": result.wall_time_s}
        # The runs table's columns: a regression's second metric is its val_mae (its history
        # has it; its val_accuracy is NaN, so not logged).
        task = [m for m in TASK_METRICS if m.startswith("val_") and m in result.history]
        for name in ("val_loss", "val_accuracy", *task):
            for kind, value in (("final", result.final(name)), ("best", result.best(name))):
                # Not a run-away (a diverged trial's last epoch, 1e24): no summary of one.
                if value is not None and abs(value) < RUNAWAY:
                    summary[f"{kind}_{name}"] = value
        rows = self._missing_steps(run_id, result, logged)
        rows += [(name, value, 0) for name, value in summary.items()]
        tags = [RunTag(keys.STATE, result.state.value), RunTag(keys.ENGINE, result.engine)]
        if result.fail_reason:
            tags.append(RunTag(keys.FAIL_REASON, result.fail_reason[:5000]))
        given = trial_params(result.spec) if params else []
        self.log_metrics(run_id, as_metrics(rows), params=given, tags=tags)
        self.call("set_terminated", run_id, status=STATUS[result.state])

    def _missing_steps(
        self, run_id: str, result: TrialResult, history_logged: HistoryLogged
    ) -> list[tuple[str, float | None, int]]:
        if history_logged == "all":
            return []
        names = [name for name in (*METRICS, *TASK_METRICS) if name in result.history]
        held = {
            (name, metric.step)
            for name in (names if history_logged == "some" else [])
            for metric in self.call("get_metric_history", run_id, name)
        }
        return [
            (name, value, step)
            for name in names
            for step, value in enumerate(result.history[name])
            if (name, step) not in held
        ]

    def _create_run(
        self, spec: TrialSpec, parent_run_id: str | None, extra: Mapping[str, str] | None
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
        run = self.call("create_run", self.experiment(), run_name=run_name(prefix, spec), tags=tags)
        return str(run.info.run_id)


def run_name(kind: str, spec: TrialSpec | None = None) -> str:
    """A run's name in the MLflow UI: ``trial-0007-before`` for a trial's run (``kind``
    first), ``study-20261208-093015`` (its start) for any other."""
    if spec is not None:
        return f"{kind}-{spec.number:04d}-{spec.config.placement}"
    return f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}"


def trial_params(spec: TrialSpec) -> list[Param]:
    return mlflow_params({**spec.config.as_params(), "seed": spec.seed})


def mlflow_params(values: Mapping[str, Any]) -> list[Param]:
    """``values`` as MLflow params (floats written with ``repr``)."""
    from mlflow.entities import Param

    # float() first: a NumPy float's repr is np.float64(...)
    return [Param(k, repr(float(v)) if isinstance(v, float) else str(v)) for k, v in values.items()]
