"""Making MLflow agree with the backend's store after an outage or a process that died."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bnsearch.tracking._connection import Connection, tags_equal
from bnsearch.tracking._trial_runs import (
    STATUS,
    create_finished_run,
    trial_params,
    write_outcome,
)
from bnsearch.trial import StoredTrials, keys, process_alive

if TYPE_CHECKING:
    from mlflow.entities import Run


@dataclass
class SyncReport:
    """What :meth:`MlflowTracker.sync` changed."""

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


class Sync:
    """The tracker's catching up with the store (a mixin of :class:`MlflowTracker`)."""

    connection: Connection
    parent_run_id: str | None
    pending: int
    kill_run: Callable[..., None]

    def sync(self, read_store: Callable[[], StoredTrials]) -> SyncReport:
        """Make MLflow agree with the study's store: each stored result gets exactly one
        ended run of its state (created, or completed from a run left RUNNING); a RUNNING
        run whose trial or study process is gone ends FAILED. ``read_store`` is called after
        MLflow's runs are read, so a trial claimed meanwhile is seen in flight."""
        connection = self.connection
        report = SyncReport()
        by_number: dict[str, list[Run]] = {}
        for run in connection.search(tags_equal((keys.KIND, "trial"))):
            by_number.setdefault(run.data.tags.get(keys.TRIAL_NUMBER, ""), []).append(run)
        store = read_store()
        written: set[str] = set()
        for result in store.results:
            own = by_number.get(str(result.spec.number), [])
            if any(run.info.status == STATUS[result.state] for run in own):
                continue
            open_run = next((run for run in own if run.info.status == "RUNNING"), None)
            if open_run is not None:
                run_id = open_run.info.run_id
                wanted = trial_params(result.spec)
                if any(param.key not in open_run.data.params for param in wanted):
                    # Created just before an outage cut its parameters off; logging the
                    # same values again is allowed, so all of them go.
                    connection.call("log_batch", run_id, params=wanted)
                write_outcome(connection, run_id, result, history_logged="some")
                written.add(run_id)
                report.completed += 1
            else:
                parent = store.parents.get(result.spec.number) or self.parent_run_id
                create_finished_run(connection, result, parent, {keys.BACKFILLED: "true"})
                report.created += 1
        in_flight = {str(number) for number in store.running}
        for number, own in by_number.items():
            if number in in_flight:
                continue
            for run in own:
                if run.info.status == "RUNNING" and run.info.run_id not in written:
                    _end_abandoned(connection, run.info.run_id)
                    report.closed += 1
        report.closed += self._close_dead_study_runs()
        self.pending = 0
        return report

    def _close_dead_study_runs(self) -> int:
        """End the RUNNING study runs of this machine's processes that no longer exist."""
        host = socket.gethostname()
        closed = 0
        for run in self.connection.search(tags_equal((keys.KIND, "study"))):
            tags = run.data.tags
            if run.info.status != "RUNNING" or tags.get(keys.HOST) != host:
                continue
            if run.info.run_id == self.parent_run_id or process_alive(tags.get(keys.PID, "")):
                continue
            _end_abandoned(self.connection, run.info.run_id)
            closed += 1
        return closed

    def fail_abandoned_runs(
        self, trial_numbers: Iterable[int], parent_run_ids: Iterable[str], reason: str
    ) -> None:
        """End the runs of trials whose process died as FAILED with ``reason``, then each
        parent run among theirs (and ``parent_run_ids``) with no running child left."""
        connection = self.connection
        # A process can die between creating a trial's run and recording its id on the
        # trial: the run's own trial-number tag (set when it was created) finds it then.
        live = {
            run.data.tags.get(keys.TRIAL_NUMBER): run
            for run in connection.search(
                tags_equal((keys.KIND, "trial")) + " and attributes.status = 'RUNNING'"
            )
        }
        parents = set(parent_run_ids)
        for number in trial_numbers:
            run = live.get(str(number))
            if run is not None:
                self.kill_run(run.info.run_id, reason, status="FAILED")
                parents.add(run.data.tags.get("mlflow.parentRunId", ""))
        parents.discard("")
        for parent in parents:
            children = connection.search(
                f"tags.`mlflow.parentRunId` = '{parent}' and attributes.status = 'RUNNING'"
            )
            if not children and connection.call("get_run", parent).info.status == "RUNNING":
                connection.call("set_tag", parent, keys.FAIL_REASON, reason)
                connection.call("set_terminated", parent, status="FAILED")


def _end_abandoned(connection: Connection, run_id: str) -> None:
    from mlflow.entities import RunTag

    reason = "abandoned: its process ended before the trial did"
    tags = [RunTag(keys.FAIL_REASON, reason), RunTag(keys.STATE, "FAILED")]
    connection.call("log_batch", run_id, tags=tags)
    connection.call("set_terminated", run_id, status="FAILED")
