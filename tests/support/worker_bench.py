"""The workers benchmark: many workers on one study, through PgBouncer (run from a clone).

``python -m tests.support.worker_bench [1,4,16,64]`` from the repository's root (needs
PostgreSQL at ``$BNSEARCH_TEST_POSTGRES`` and Debian's ``pgbouncer``; minutes). The parts
are :mod:`tests.support.cluster`'s, with the stand-in engine (:mod:`tests.support.standin`).

Measured, per number of workers (1, 4, 16, 64 by default) and per size of the study the
workers join (pre-filled with 1,000 and 10,000 finished trials):

* claims per second (claims over the span from the first to the last), and claim latency
  (waiting for the lock plus holding it: median and p95) with the hold alone (median):
  each worker logs every claim (``bnsearch.claims`` at DEBUG);
* database round trips (queries) and transactions per trial, from PgBouncer's
  ``SHOW STATS`` (every statement of every worker passes through it);
* MLflow HTTP calls per trial, from the server's access log;
* the most server connections the database had (``pg_stat_activity``), against its limit.

A benchmark, not a test: it asserts nothing and prints one table. On a machine with few
cores the workers' own Python (imports, the study's reads, MLflow's client) competes with
PostgreSQL, PgBouncer and the MLflow server for the same CPUs, so the figures at 64
workers show that machine's limit as much as bnsearch's.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from bnsearch.trial import Phase, keys
from tests.support.cluster import (
    PLACEMENTS,
    THROUGH_POOLER,
    Cluster,
    ConnectionWatch,
    Fleet,
    audit_study,
    claim_timings,
    cpu_seconds,
    group_cpu_seconds,
    prepare_study_file,
    write_study_file,
)
from tests.support.standin import standin_history

__all__ = ["PREFILLED_RESULT", "main", "prefill_study", "run_worker_benchmark"]


#: Where a pre-filled trial keeps its result: as much data as ``bnsearch.result`` holds,
#: under a key bnsearch does not read, so that no worker's start-up sync writes 10,000
#: MLflow runs for them (the MLflow side of a big study is not what this measures).
PREFILLED_RESULT = "bench.result"


def prefill_study(storage: str, name: str, trials: int, chunk: int = 500) -> int:
    """Add about ``trials`` finished search trials (whole blocks, stand-in results under
    :data:`PREFILLED_RESULT`) to the prepared study ``name``, as a study that has run a
    while holds them; how many were added (a multiple of 3)."""
    import optuna

    from bnsearch.config import StudyConfig
    from bnsearch.trial import BNConfig, TrialResult, TrialSpec, TrialState, trial_seed

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = StudyConfig().space
    rng_study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    rdb = optuna.storages.RDBStorage(storage, engine_kwargs=THROUGH_POOLER)
    study = optuna.load_study(study_name=name, storage=rdb)
    pending = []
    for block in range(-(trials // len(PLACEMENTS)), 0):  # never a number a new block gets
        template = rng_study.ask()
        space.suggest(template)
        seed = trial_seed(0, block)
        for placement in PLACEMENTS:
            params = {**template.params, "placement": placement}
            spec = TrialSpec(0, BNConfig(**params), seed, block)
            history = standin_history(spec, 2)
            result = TrialResult(spec, TrialState.COMPLETE, history, engine="standin")
            pending.append(
                optuna.trial.create_trial(
                    params=params,
                    distributions=template.distributions,
                    value=history["val_loss"][-1],
                    user_attrs={
                        "seed": seed,
                        keys.PHASE: Phase.SEARCH.value,
                        keys.BLOCK: block,
                        keys.WORKER: "prefill",
                    },
                    system_attrs={PREFILLED_RESULT: result.to_json()},
                )
            )
        if len(pending) >= chunk:
            study.add_trials(pending)
            pending = []
    if pending:
        study.add_trials(pending)
    rdb.engine.dispose()
    return trials // len(PLACEMENTS) * len(PLACEMENTS)


@dataclass(frozen=True)
class _Row:
    workers: int
    study_size: int
    trials: int
    seconds: float
    claims: int
    claims_per_s: float
    lock_busy: float  # share of the claims' span the lock was held
    latency_median_ms: float
    latency_p95_ms: float
    held_median_ms: float
    queries_per_trial: float
    xacts_per_trial: float
    postgres_ms_per_trial: float
    pgbouncer_ms_per_trial: float
    http_per_trial: float
    mlflow_ms_per_trial: float
    mlflow_ms_per_call: float
    most_connections: int
    limit: int
    exact: bool


def _percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


# One fleet's run is one story: prepare and pre-fill the study, start the fleet, time its
# claims, count round trips and MLflow calls, stop it (long because it reads as one run).
def _measure(
    cluster: Cluster,
    folder: Path,
    workers: int,
    new_trials: int,
    study_size: int,
    epoch_s: float,
) -> _Row:
    """One fleet of ``workers`` adding ``new_trials`` to a study of ``study_size``."""
    name = f"bench-{workers}w-{study_size}-{uuid.uuid4().hex[:6]}"
    run_folder = folder / name
    run_folder.mkdir(parents=True)
    study_size = study_size // len(PLACEMENTS) * len(PLACEMENTS)
    study_file = write_study_file(run_folder, name, study_size + new_trials)
    prepare_study_file(cluster, study_file, run_folder)
    if study_size:
        prefill_study(cluster.storage, name, study_size)
    # One block per claim (the most claims); bnsearch's default heartbeat (10 s) and grace.
    flags = ["--population", str(len(PLACEMENTS))]
    fleet = Fleet(
        run_folder, study_file, cluster.storage, cluster.tracking.uri, flags, epoch_s=epoch_s
    )
    pooler, tracking = cluster.pooler, cluster.tracking
    assert pooler.process is not None and tracking.process is not None
    before_db = pooler.stats(cluster.database.name)
    before_http = sum(tracking.requests().values())
    before_cpu = (cpu_seconds(pooler.process.pid), group_cpu_seconds(tracking.process.pid))
    started = time.monotonic()
    with ConnectionWatch(cluster.database.name) as watch:
        fleet.start(workers)
        try:
            fleet.wait(timeout=1800)
        finally:
            fleet.stop()
    seconds = time.monotonic() - started
    pooler_cpu = cpu_seconds(pooler.process.pid) - before_cpu[0]
    mlflow_cpu = group_cpu_seconds(tracking.process.pid) - before_cpu[1]
    after_db = pooler.stats(cluster.database.name)
    http = sum(tracking.requests().values()) - before_http
    audit = audit_study(cluster.storage, name, study_size + new_trials)
    claims = [c for c in claim_timings(run_folder) if c[3] > 0]
    added = max(1, audit.outcomes - study_size)
    span = claims[-1][0] - claims[0][0] + claims[0][2] if claims else float("nan")
    latencies = [1000 * (waited + held) for _, waited, held, _ in claims]
    return _Row(
        workers=workers,
        study_size=study_size,
        trials=audit.outcomes - study_size,
        seconds=seconds,
        claims=len(claims),
        claims_per_s=len(claims) / span if span > 0 else float("nan"),
        lock_busy=sum(c[2] for c in claims) / span if span > 0 else float("nan"),
        latency_median_ms=_percentile(latencies, 0.5),
        latency_p95_ms=_percentile(latencies, 0.95),
        held_median_ms=_percentile([1000 * c[2] for c in claims], 0.5),
        queries_per_trial=(after_db["total_query_count"] - before_db["total_query_count"]) / added,
        xacts_per_trial=(after_db["total_xact_count"] - before_db["total_xact_count"]) / added,
        postgres_ms_per_trial=1000 * watch.server_cpu_s / added,
        pgbouncer_ms_per_trial=1000 * pooler_cpu / added,
        http_per_trial=http / added,
        mlflow_ms_per_trial=1000 * mlflow_cpu / added,
        mlflow_ms_per_call=1000 * mlflow_cpu / max(1, http),
        most_connections=watch.most,
        limit=cluster.database.limit,
        exact=audit.exact and not fleet.failures(),
    )


_HEADER = (
    "| workers | study size | trials added | wall s | claims | claims/s | lock busy "
    "| claim latency p50 / p95 ms | lock held p50 ms | DB queries / trial "
    "| DB transactions / trial | PostgreSQL CPU ms / trial | PgBouncer CPU ms / trial "
    "| MLflow HTTP calls / trial | MLflow server CPU ms / trial (/ call) "
    "| most DB connections (limit) | exact |\n" + "|" + "---|" * 17
)


def _line(r: _Row) -> str:
    return (
        f"| {r.workers} | {r.study_size:,} | {r.trials} | {r.seconds:.0f} | {r.claims} | "
        f"{r.claims_per_s:.1f} | {100 * r.lock_busy:.0f} % | "
        f"{r.latency_median_ms:.0f} / {r.latency_p95_ms:.0f} | {r.held_median_ms:.0f} | "
        f"{r.queries_per_trial:.0f} | {r.xacts_per_trial:.0f} | "
        f"{r.postgres_ms_per_trial:.0f} | {r.pgbouncer_ms_per_trial:.1f} | "
        f"{r.http_per_trial:.1f} | {r.mlflow_ms_per_trial:.0f} ({r.mlflow_ms_per_call:.0f}) | "
        f"{r.most_connections} ({r.limit}) | {'yes' if r.exact else 'NO'} |"
    )


def run_worker_benchmark(
    workers: Sequence[int] = (1, 4, 16, 64),
    study_sizes: Sequence[int] = (1000, 10000),
    sized_workers: int = 16,
    trials_per_worker: int = 6,
    min_trials: int = 24,
    epoch_s: float = 0.25,
    connection_limit: int = 20,
    pool_size: int = 4,
    mlflow_workers: int = 2,
    out: TextIO | None = None,
) -> list[_Row]:
    """Run and print the table: each count of ``workers`` on a fresh study (adding
    ``trials_per_worker`` per worker, ``min_trials`` at least), then ``sized_workers``
    workers joining a study pre-filled with each of ``study_sizes`` trials."""
    out = out or sys.stdout
    rows: list[_Row] = []
    print(
        f"workers benchmark: stand-in engine ({epoch_s} s per epoch, 2 epochs, one "
        f"block of 3 per claim); PgBouncer transaction mode, pool {pool_size}; database "
        f"CONNECTION LIMIT {connection_limit}; mlflow server --workers {mlflow_workers}; "
        f"{os.cpu_count()} CPU cores",
        file=out,
        flush=True,
    )
    with (
        tempfile.TemporaryDirectory(prefix="bnsearch-bench-workers-") as folder,
        Cluster.started(Path(folder), connection_limit, pool_size, mlflow_workers) as cluster,
    ):
        print(_HEADER, file=out, flush=True)
        runs = [(n, 0) for n in workers] + [(sized_workers, size) for size in study_sizes]
        for count, size in runs:
            new = 3 * max(1, round(max(min_trials, count * trials_per_worker) / 3))
            rows.append(_measure(cluster, Path(folder), count, new, size, epoch_s))
            print(_line(rows[-1]), file=out, flush=True)
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tests.support.worker_bench [COUNTS]``: the table, or one line on bad input."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.support.worker_bench",
        description="Many stand-in workers on one study through PgBouncer, then 16 joining "
        "studies of 1,000 and 10,000 trials: claims/s, claim latency, database and MLflow "
        "calls per trial (needs PostgreSQL and pgbouncer; minutes).",
    )
    parser.add_argument(
        "counts", nargs="?", default="1,4,16,64", help="numbers of workers (default 1,4,16,64)"
    )
    args = parser.parse_args(argv)
    try:
        counts = [int(n) for n in args.counts.split(",")]
    except ValueError:
        print(
            f"worker_bench: error: give counts such as 1,4,16, not {args.counts!r}.",
            file=sys.stderr,
        )
        return 2
    run_worker_benchmark(workers=counts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
