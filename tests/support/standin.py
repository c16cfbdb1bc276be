"""A stand-in engine for coordination tests and benchmarks: no TensorFlow, no training.

Not part of bnsearch: :func:`register` adds it to a process through
:func:`bnsearch.engines.register_engine`, as ``standin``, after which ``--engine standin`` (or
``engine = "standin"`` in a study file) makes every trial sleep :data:`EPOCH_S` seconds per
epoch (``$BNSEARCH_STANDIN_EPOCH_S`` overrides it; the batch's trials "train" together, so a
batch takes ``epochs × EPOCH_S``) and return a made-up history that depends only on the
trial's seed and configuration: the same spec always gives the same result, on any machine
and in any process. The trials of a batch are ``--population`` at most, so a worker claims
``--population`` trials (in whole blocks) at a time, as with the population engine.

What it is for: several workers sharing a study (``tests/test_scale.py``, the workers
benchmark ``python -m tests.support.worker_bench``) exercise the claims, heartbeats, MLflow
and the database as a real study does, with the training taken out, so dozens of workers fit
on a laptop. Its numbers mean nothing about BatchNormalization. It imports neither
TensorFlow nor Keras (the scale test checks ``sys.modules`` of a worker).

``python -m tests.support.standin COMMAND ...`` (from the repository's root) is
``python -m bnsearch COMMAND ...`` with the stand-in engine registered.
"""

from __future__ import annotations

import math
import os
import random
import subprocess
import sys
import time
import zlib
from collections.abc import Sequence
from pathlib import Path

from bnsearch.data import Dataset
from bnsearch.engines import EpochCallback, TrainOutput, register_engine
from bnsearch.networks import NetworkSettings
from bnsearch.trial import METRICS, SearchSpace, TrialRecorder, TrialResult, TrialSpec

__all__ = [
    "EPOCH_S",
    "ROOT",
    "StandinEngine",
    "register",
    "standin_env",
    "standin_history",
    "standin_study",
]

#: The repository's root, where ``python -m tests.support.standin`` finds this module.
ROOT = Path(__file__).resolve().parents[2]
#: Seconds one epoch of a batch sleeps, unless ``$BNSEARCH_STANDIN_EPOCH_S`` says otherwise.
EPOCH_S = 0.05


def _epoch_seconds() -> float:
    raw = os.environ.get("BNSEARCH_STANDIN_EPOCH_S")
    try:
        return max(0.0, float(raw)) if raw else EPOCH_S
    except ValueError:
        return EPOCH_S


def standin_history(spec: TrialSpec, epochs: int) -> dict[str, list[float]]:
    """The made-up per-epoch metrics of ``spec``: a falling loss whose level depends on the
    configuration and seed (``zlib.crc32``, not ``hash``: the same in every process)."""
    key = repr((spec.seed, sorted(spec.config.as_params().items())))
    rng = random.Random(zlib.crc32(key.encode()))
    level = 0.3 + 0.4 * rng.random()
    history: dict[str, list[float]] = {name: [] for name in METRICS}
    for epoch in range(epochs):
        decay = math.exp(-0.5 * epoch)
        loss = level * (1 + decay) + 0.01 * rng.random()
        history["loss"].append(loss)
        history["val_loss"].append(loss + 0.02 + 0.01 * rng.random())
        history["accuracy"].append(1 - loss / 2)
        history["val_accuracy"].append(1 - loss / 2 - 0.01)
    return history


class StandinEngine:
    """Sleeps instead of training; deterministic results (see the module docstring)."""

    name = "standin"

    def __init__(self, trials_at_once: int = 64, epoch_s: float | None = None) -> None:
        self.trials_at_once = trials_at_once
        self.epoch_s = _epoch_seconds() if epoch_s is None else epoch_s

    @staticmethod
    def trains(
        network: NetworkSettings, dataset: Dataset | None = None, space: SearchSpace | None = None
    ) -> bool:
        """Any network: none is built."""
        return True

    def check_fits(self, dataset: Dataset, network: NetworkSettings) -> str | None:
        """Nothing is held in memory."""
        return None

    def train(
        self,
        specs: Sequence[TrialSpec],
        dataset: Dataset,
        network: NetworkSettings,
        on_epoch: EpochCallback | None = None,
        keep_models: bool = False,
    ) -> TrainOutput:
        """Each epoch: one sleep for the batch, then each trial's epoch metrics (pruning
        asked as after a real epoch). No models: with ``keep_models`` each is None."""
        started = time.perf_counter()
        recorders = []
        for index, spec in enumerate(specs):
            prune = None if on_epoch is None else (lambda e, m, i=index: on_epoch(i, e, m))
            recorders.append(TrialRecorder(spec, self.name, prune))
        histories = [standin_history(spec, network.epochs) for spec in specs]
        for epoch in range(network.epochs):
            live = [i for i, recorder in enumerate(recorders) if not recorder.stopped]
            if not live:
                break
            time.sleep(self.epoch_s)
            for i in live:
                recorders[i].record_epoch(epoch, {k: v[epoch] for k, v in histories[i].items()})
        wall = (time.perf_counter() - started) / max(1, len(specs))
        results: list[TrialResult] = [recorder.result(wall) for recorder in recorders]
        return TrainOutput(results, [None] * len(specs) if keep_models else [])


def register() -> None:
    """Make ``standin`` an engine of this process (no TensorFlow imported for it)."""
    register_engine("standin", StandinEngine, tensorflow=False)


def standin_env(**more: str) -> dict[str, str]:
    """This process's environment with :data:`ROOT` on ``PYTHONPATH`` (and ``more``): for
    a ``python -m tests.support.standin`` (or any process that registers the engine) started
    in a folder of its own."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, **more}


def standin_study(
    folder: Path, data: Path, epoch_s: float, *flags: str
) -> tuple[subprocess.CompletedProcess, str, str]:
    """``python -m bnsearch study`` as typed on ``data`` (a ``label`` target), with this
    engine registered and sleeping ``epoch_s`` per epoch: study ``standin``, its stores in
    ``folder``, no confirmation round, then ``flags``. The run, the Optuna storage's URL and
    the MLflow store's."""
    storage, tracking = f"sqlite:///{folder}/o.db", f"sqlite:///{folder}/m.db"
    done = subprocess.run(
        [
            sys.executable, "-m", "tests.support.standin", "study", "--data", str(data),
            "--target", "label", "--engine", "standin", "--confirm-seeds", "0",
            "--study-name", "standin", f"--storage={storage}", f"--tracking-uri={tracking}",
            *flags,
        ],  # fmt: skip
        cwd=folder, env=standin_env(BNSEARCH_STANDIN_EPOCH_S=str(epoch_s)),
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    return done, storage, tracking


if __name__ == "__main__":
    from bnsearch.cli import main

    register()
    sys.exit(main())
