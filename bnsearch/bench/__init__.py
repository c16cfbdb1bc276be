"""Benchmarks, not tests: engines, backends, the settled rule, the step profile.

The benchmark of many workers on one study runs from a clone, with the tests' support code
(``python -m tests.support.worker_bench``).
"""

from __future__ import annotations

from bnsearch.bench._backends import BACKENDS, UNTIL, compare_backends
from bnsearch.bench._engines import run_benchmark
from bnsearch.bench._profile import profile_steps
from bnsearch.bench._settled import (
    SCENARIOS,
    look_schedule,
    run_settled_benchmark,
    simulate_settled,
)

__all__ = [
    "BACKENDS",
    "SCENARIOS",
    "UNTIL",
    "compare_backends",
    "look_schedule",
    "profile_steps",
    "run_benchmark",
    "run_settled_benchmark",
    "simulate_settled",
]
