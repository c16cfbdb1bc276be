"""Benchmarks, not tests: engines, backends, the settled rule, the profile, many workers.

The many-workers harness (a limited database, PgBouncer, an MLflow server, stand-in
workers) is shared with the scale test.
"""

from __future__ import annotations

from bnsearch.bench._backends import (
    BACKENDS,
    UNTIL,
    compare_backends,
)
from bnsearch.bench._engines import (
    run_benchmark,
)
from bnsearch.bench._profile import (
    digits_cnn,
    matmul_floor_seconds,
    profile_specs,
    profile_steps,
)
from bnsearch.bench._settled import (
    SCENARIOS,
    look_schedule,
    run_settled_benchmark,
    simulate_settled,
)
from bnsearch.bench._workers import (
    Cluster,
    ConnectionWatch,
    Fleet,
    PgBouncer,
    StudyAudit,
    audit_study,
    claim_timings,
    limited_database,
    pgbouncer_path,
    prefill_study,
    prepare_study_file,
    run_worker_benchmark,
    write_study_file,
)

__all__ = [
    "BACKENDS",
    "SCENARIOS",
    "UNTIL",
    "Cluster",
    "ConnectionWatch",
    "Fleet",
    "PgBouncer",
    "StudyAudit",
    "audit_study",
    "claim_timings",
    "compare_backends",
    "digits_cnn",
    "limited_database",
    "look_schedule",
    "matmul_floor_seconds",
    "pgbouncer_path",
    "prefill_study",
    "prepare_study_file",
    "profile_specs",
    "profile_steps",
    "run_benchmark",
    "run_settled_benchmark",
    "run_worker_benchmark",
    "simulate_settled",
    "write_study_file",
]
