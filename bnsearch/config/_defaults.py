"""Where things go and what is chosen when nothing is said: one place for every default
that more than one layer reads (the ``mlruns`` root, the store URIs, the verdict's
threshold, the stopping rules, the engines and their trial budgets)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "DEFAULT_N_TRIALS",
    "DEFAULT_POPULATION",
    "DEFAULT_STORE_DIR",
    "DEFAULT_THRESHOLD",
    "ENGINES",
    "QUESTIONS",
    "UNTIL",
    "default_storage",
    "default_tracking_uri",
]

#: The local store: Optuna's and MLflow's SQLite files and MLflow's artifacts, relative to
#: the folder a command runs in (never committed).
DEFAULT_STORE_DIR = Path("mlruns")
#: Smallest difference in the metric that counts as "placement matters".
DEFAULT_THRESHOLD = 0.01
#: The stopping rules: ``settled`` stops as soon as the anytime-valid interval answers,
#: ``budget`` trains the whole budget and decides once.
UNTIL = ("settled", "budget")
#: What a study run until settled waits for: both questions (does BN help here; before or
#: after), or one (the verdict answers both either way).
QUESTIONS = ("both", "bn", "placement")
#: The engines, the first the default. ``standin`` trains nothing (it sleeps and makes up a
#: deterministic result): for coordination tests and benchmarks of many workers only.
ENGINES = ("population", "keras", "standin")
#: Trials added per run when --n-trials is not given, per engine: each fits the ~10 minute
#: budget of the default study on 2 CPU cores.
DEFAULT_N_TRIALS = {"population": 256, "keras": 16}
#: Trials the population engine trains in one graph.
DEFAULT_POPULATION = 64


def default_storage(store_dir: Path = DEFAULT_STORE_DIR) -> str:
    """The Optuna storage of a study run without ``--storage``."""
    return f"sqlite:///{store_dir / 'optuna.db'}"


def default_tracking_uri(store_dir: Path = DEFAULT_STORE_DIR, _no_env: bool = False) -> str:
    """``$MLFLOW_TRACKING_URI``, else the SQLite file under ``store_dir``."""
    local = f"sqlite:///{store_dir / 'mlflow.db'}"
    return local if _no_env else os.environ.get("MLFLOW_TRACKING_URI") or local
