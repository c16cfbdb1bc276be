"""The study's parent run, one per invocation: its parameters, data set, status and verdict."""

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
from bnsearch.tracking._connection import Connection, TrackingUnavailable, as_metrics, tags_equal
from bnsearch.tracking._trial_runs import mlflow_params
from bnsearch.trial import keys

if TYPE_CHECKING:
    from bnsearch.stats import PairComparison, Verdict

_PAIR_STATS = ("median_difference", "ci_low", "ci_high", "cs_low", "cs_high", "p_holm")


class ParentRuns(Connection):
    """The tracker's parent run (a part of :class:`MlflowTracker`)."""

    def start_study_run(
        self,
        run_name: str,
        params: Mapping[str, Any],
        tags: Mapping[str, str],
        dataset: Dataset | None = None,
    ) -> str:
        """Open the parent run with ``params``, ``tags`` and ``dataset`` as its training input."""
        from mlflow.entities import DatasetInput, InputTag, RunTag

        # Who runs it: sync ends it once that process is gone.
        owner = {keys.HOST: socket.gethostname(), keys.PID: str(os.getpid())}
        tags = {keys.KIND: "study", **owner, **tags}
        run = self.call("create_run", self.experiment(), run_name=run_name, tags=tags)
        self.parent_run_id = run_id = run.info.run_id
        self._parent_run_name = run_name
        started = [RunTag(keys.STARTED, time.strftime("%Y-%m-%dT%H:%M:%S"))]
        self.call("log_batch", run_id, params=mlflow_params(params), tags=started)
        if dataset is not None:
            # mlflow.data.from_numpy is this function, set on the package at import (untyped).
            from mlflow.data.numpy_dataset import from_numpy

            logged = from_numpy(
                dataset.x, targets=dataset.y, name=dataset.name, digest=dataset.fingerprint
            )
            context = [InputTag("mlflow.data.context", "training")]
            inputs = [DatasetInput(logged._to_mlflow_entity(), tags=context)]
            # Workers starting together race to insert the same dataset row.
            self.call("log_inputs", run_id, datasets=inputs, races=True)
        return str(run_id)

    def end_study_run(
        self,
        status: str = "FINISHED",
        metrics: Mapping[str, float | None] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        """End the parent run with ``metrics`` (a None or non-finite one left out) and ``tags``."""
        from mlflow.entities import RunTag

        if self.parent_run_id is None:
            return
        rows = [(key, value, 0) for key, value in (metrics or {}).items()]
        given = [RunTag(key, str(value)) for key, value in (tags or {}).items()]
        self.call("log_batch", self.parent_run_id, metrics=as_metrics(rows), tags=given)
        self.call("set_terminated", self.parent_run_id, status=status)
        self.parent_run_id = None

    @contextlib.contextmanager
    def study_run_guard(self) -> Iterator[None]:
        """End the parent run as KILLED on Ctrl-C, FAILED on any error, and re-raise that."""
        try:
            yield
        except BaseException as error:
            with contextlib.suppress(TrackingUnavailable):
                if isinstance(error, KeyboardInterrupt):
                    self.end_study_run(status="KILLED", tags={keys.INTERRUPTED: "true"})
                else:
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
        """End the parent run with the verdict's metrics and tags, ``note`` as its description
        and ``label`` to start its name, marked the study's latest."""
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
                values.update(_pair_metrics(sub.primary, activation, stats=_PAIR_STATS[:3]))
        self.end_study_run(status=status, metrics=values, tags=tags)

    def _name_and_mark_latest(self, label: str) -> None:
        """The parent run's name starts with ``label``; earlier parent runs lose the mark."""
        if self.parent_run_id is None:
            return
        name = f"{label} · {self._parent_run_name}".strip(" ·")
        self.call("update_run", self.parent_run_id, name=name)
        for earlier in self.search(tags_equal((keys.LATEST, "true"))):
            if earlier.info.run_id != self.parent_run_id:
                self.call("set_tag", earlier.info.run_id, keys.LATEST, "false")


def _loggable(value: float) -> bool:
    """Finite, and not a diverged trial's sentinel (or a bound interpolated from one)."""
    return math.isfinite(value) and abs(value) < RUNAWAY


def _pair_metrics(
    pair: PairComparison, *scope: str, stats: tuple[str, ...] = _PAIR_STATS
) -> dict[str, float]:
    """A pair's loggable verdict metrics among ``stats`` (no Holm p-value for one block)."""
    values = (pair.median, pair.ci_low, pair.ci_high, pair.cs_low, pair.cs_high, pair.p_holm)
    named = dict(zip(_PAIR_STATS, values, strict=True))
    if pair.n_blocks < 2:
        del named["p_holm"]
    return {
        keys.verdict_metric(stat, *scope): float(named[stat])
        for stat in stats
        if stat in named and _loggable(named[stat])
    }
