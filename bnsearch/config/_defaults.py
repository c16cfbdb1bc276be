"""Every default that more than one layer reads: the stores, the threshold, the stopping
rules, the engines and their trial budgets."""

from __future__ import annotations

import os
from pathlib import Path

#: The local store (Optuna's and MLflow's files), relative to the folder a command runs in.
DEFAULT_STORE_DIR = Path("mlruns")
#: Smallest difference in the metric that counts as "placement matters".
DEFAULT_THRESHOLD = 0.01
#: The stopping rules and the questions a study run until settled waits for (``--until``,
#: ``--question``).
UNTIL = ("settled", "budget")
QUESTIONS = ("both", "bn", "placement")
#: The built-in engines, the first the default.
ENGINES = ("population", "keras")
#: Engines registered by :func:`bnsearch.engines.register_engine`: name → whether a study
#: on it imports TensorFlow.
REGISTERED_ENGINES: dict[str, bool] = {}
#: Trials added per run without --n-trials: each fits the default study's ~10 minutes on 2 CPUs.
DEFAULT_N_TRIALS = {"population": 256, "keras": 16}
#: Trials the population engine trains in one graph.
DEFAULT_POPULATION = 64


def needs_tensorflow(engine: str | None) -> bool:
    """Whether a study on ``engine`` (None: not said) imports TensorFlow."""
    return REGISTERED_ENGINES.get(engine or "", True)


def default_storage(store_dir: Path = DEFAULT_STORE_DIR) -> str:
    """The Optuna storage of a study run without ``--storage``."""
    return f"sqlite:///{store_dir / 'optuna.db'}"


def default_tracking_uri(store_dir: Path = DEFAULT_STORE_DIR, _no_env: bool = False) -> str:
    """``$MLFLOW_TRACKING_URI``, else the SQLite file under ``store_dir``."""
    local = f"sqlite:///{store_dir / 'mlflow.db'}"
    return local if _no_env else os.environ.get("MLFLOW_TRACKING_URI") or local
