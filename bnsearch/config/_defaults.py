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
    "REGISTERED_ENGINES",
    "UNTIL",
    "default_storage",
    "default_tracking_uri",
    "needs_tensorflow",
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
#: The built-in engines, the first the default.
ENGINES = ("population", "keras")
#: Engines registered from Python for this process (only
#: :func:`bnsearch.engines.register_engine` writes here): name → whether a study on it
#: imports TensorFlow. ``--engine`` and a study file's ``engine`` accept them too.
REGISTERED_ENGINES: dict[str, bool] = {}
#: Trials added per run when --n-trials is not given, per engine: each fits the ~10 minute
#: budget of the default study on 2 CPU cores.
DEFAULT_N_TRIALS = {"population": 256, "keras": 16}
#: Trials the population engine trains in one graph.
DEFAULT_POPULATION = 64


def needs_tensorflow(engine: str | None) -> bool:
    """Whether a study on ``engine`` (None: not said) imports TensorFlow: the built-in
    engines do; a registered engine says."""
    return REGISTERED_ENGINES.get(engine or "", True)


def default_storage(store_dir: Path = DEFAULT_STORE_DIR) -> str:
    """The Optuna storage of a study run without ``--storage``."""
    return f"sqlite:///{store_dir / 'optuna.db'}"


def default_tracking_uri(store_dir: Path = DEFAULT_STORE_DIR, _no_env: bool = False) -> str:
    """``$MLFLOW_TRACKING_URI``, else the SQLite file under ``store_dir``."""
    local = f"sqlite:///{store_dir / 'mlflow.db'}"
    return local if _no_env else os.environ.get("MLFLOW_TRACKING_URI") or local
