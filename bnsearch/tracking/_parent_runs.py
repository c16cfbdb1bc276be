"""The study's parent run, one per invocation: started with the study's parameters and data
set, ended with its status, and with the verdict when there is one."""

from __future__ import annotations

import contextlib
import math
import os
import socket
import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from bnsearch.data import Dataset
from bnsearch.stats import RUNAWAY
from bnsearch.tracking._connection import Connection, TrackingUnavailable, tags_equal
from bnsearch.tracking._trial_runs import mlflow_params
from bnsearch.trial import keys

if TYPE_CHECKING:
    from bnsearch.stats import PairComparison, Verdict


class ParentRuns:
    """The tracker's parent run (a mixin of :class:`MlflowTracker`)."""

    connection: Connection
    parent_run_id: str | None
    _parent_run_name: str

    def start_study_run(
        self,
        run_name: str,
        params: Mapping[str, Any],
        tags: Mapping[str, str],
        dataset: Dataset | None = None,
    ) -> str:
        from mlflow.entities import RunTag

        run = self.connection.call(
            "create_run",
            self.connection.experiment(),
            run_name=run_name,
            tags={keys.KIND: "study", **_process_tags(), **tags},
        )
        self.parent_run_id = run.info.run_id
        self._parent_run_name = run_name
        self.connection.call(
            "log_batch",
            self.parent_run_id,
            params=mlflow_params(params),
            tags=[RunTag(keys.STARTED, time.strftime("%Y-%m-%dT%H:%M:%S"))],
        )
        if dataset is not None:
            self.log_dataset(self.parent_run_id, dataset)
        return self.parent_run_id

    def end_study_run(
        self,
        status: str = "FINISHED",
        metrics: Mapping[str, float] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        from mlflow.entities import Metric, RunTag

        if self.parent_run_id is None:
            return
        now = int(time.time() * 1000)
        finite = {k: v for k, v in (metrics or {}).items() if v is not None and math.isfinite(v)}
        self.connection.call(
            "log_batch",
            self.parent_run_id,
            metrics=[Metric(k, float(v), now, 0) for k, v in finite.items()],
            tags=[RunTag(k, str(v)) for k, v in (tags or {}).items()],
        )
        self.connection.call("set_terminated", self.parent_run_id, status=status)
        self.parent_run_id = None

    @contextlib.contextmanager
    def study_run_guard(self) -> Iterator[None]:
        """End the parent run as KILLED on Ctrl-C and FAILED on any error, then re-raise
        (the first error: MLflow being away as well does not hide it)."""
        try:
            yield
        except KeyboardInterrupt:
            with contextlib.suppress(TrackingUnavailable):
                self.end_study_run(status="KILLED", tags={keys.INTERRUPTED: "true"})
            raise
        except BaseException:
            with contextlib.suppress(TrackingUnavailable):
                self.end_study_run(status="FAILED")
            raise

    def end_study_run_with_verdict(
        self,
        verdict: Verdict,
        note: str,
        label: str,
        metrics: Mapping[str, float] | None = None,
        status: str = "FINISHED",
    ) -> None:
        """End the parent run with the verdict's metrics and tags (``study`` and ``report``
        both end theirs here): ``note`` (from :mod:`bnsearch.report`) is its description,
        its name starts with ``label``, and it is marked the study's latest parent run."""
        values = {**(metrics or {}), keys.verdict_metric("n_blocks"): float(verdict.n_blocks)}
        tags = {
            keys.VERDICT: verdict.outcome,
            keys.VERDICT_TEXT: verdict.statement,
            keys.VERDICT_RULE: verdict.until,
            keys.VERDICT_QUESTION: verdict.question,
            keys.VERDICT_HEADLINE: verdict.headline,
            keys.VERDICT_PLACEMENT_TEXT: verdict.placement.statement,
            keys.VERDICT_BN: verdict.bn.outcome,
            keys.VERDICT_BN_TEXT: verdict.bn.statement,
            keys.VERDICT_BN_HELPS: ",".join(verdict.bn.helping),
            "mlflow.note.content": note,
            keys.LATEST: "true",
        }
        self._name_and_mark_latest(label)
        if verdict.primary is not None:
            values.update(_pair_metrics(verdict.primary))
            if _loggable(verdict.primary.mean):  # over the blocks without a diverged trial
                values[keys.verdict_metric("mean_difference")] = verdict.primary.mean
        for pair in verdict.pairs:  # does BN help: each BN placement against none
            if pair.second == "none":
                values.update(_pair_metrics(pair, "bn", pair.first))
        for activation, sub in verdict.by_activation.items():
            tags[keys.per_activation(keys.VERDICT, activation)] = sub.outcome
            tags[keys.per_activation(keys.VERDICT_TEXT, activation)] = sub.statement
            tags[keys.per_activation(keys.VERDICT_BN, activation)] = sub.bn.outcome
            if sub.primary is not None:
                scoped = _pair_metrics(sub.primary, activation)
                for stat in ("median_difference", "ci_low", "ci_high"):
                    name = keys.verdict_metric(stat, activation)
                    if name in scoped:  # left out when not a number to log
                        values[name] = scoped[name]
        self.end_study_run(status=status, metrics=values, tags=tags)

    def _name_and_mark_latest(self, label: str) -> None:
        """The parent run's name starts with ``label``; earlier parent runs lose the mark."""
        if self.parent_run_id is None:
            return
        name = f"{label} · {self._parent_run_name}".strip(" ·")
        self.connection.call("update_run", self.parent_run_id, name=name)
        for earlier in self.connection.search(tags_equal((keys.LATEST, "true"))):
            if earlier.info.run_id != self.parent_run_id:
                self.connection.call("set_tag", earlier.info.run_id, keys.LATEST, "false")

    def log_dataset(self, run_id: str, dataset: Dataset) -> None:
        """Link the study's data set to ``run_id`` as its training input."""
        # mlflow.data.from_numpy is this function, set on the package at import (untyped there).
        from mlflow.data.numpy_dataset import from_numpy
        from mlflow.entities import DatasetInput, InputTag

        mlflow_dataset = from_numpy(
            dataset.x, targets=dataset.y, name=dataset.name, digest=dataset.fingerprint
        )
        inputs = [
            DatasetInput(
                mlflow_dataset._to_mlflow_entity(),
                tags=[InputTag("mlflow.data.context", "training")],
            )
        ]
        # Workers starting together race to insert the same dataset row (a refused
        # duplicate); once one has, the others' next try links to it.
        self.connection.call_through_races("log_inputs", run_id, datasets=inputs)


def _loggable(value: float) -> bool:
    """Whether a verdict statistic is a number to log: finite, and not a diverged trial's
    sentinel (or a bound interpolated between such values)."""
    return math.isfinite(value) and abs(value) < RUNAWAY


def _pair_metrics(pair: PairComparison, *scope: str) -> dict[str, float]:
    """A pair's verdict metrics (``verdict.median_difference``, ...), without what is not a
    number to log (and the Holm p-value of a single block: no test)."""
    values = {
        keys.verdict_metric("median_difference", *scope): pair.median,
        keys.verdict_metric("ci_low", *scope): pair.ci_low,
        keys.verdict_metric("ci_high", *scope): pair.ci_high,
        keys.verdict_metric("cs_low", *scope): pair.cs_low,
        keys.verdict_metric("cs_high", *scope): pair.cs_high,
    }
    if pair.n_blocks >= 2:
        values[keys.verdict_metric("p_holm", *scope)] = pair.p_holm
    return {name: float(value) for name, value in values.items() if _loggable(value)}


def _process_tags() -> dict[str, str]:
    """Who runs a study run: :meth:`MlflowTracker.sync` ends it once that process is gone."""
    return {keys.HOST: socket.gethostname(), keys.PID: str(os.getpid())}
