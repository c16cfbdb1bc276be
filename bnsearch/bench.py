"""``python -m bnsearch bench``: the Keras engine and the population engine side by side.

Trains the thread's network (batch 16) on the synthetic data and prints, from one run on one
machine: seconds per trial-epoch for the Keras engine and for the population engine at each
population size P, the speed-up over Keras, the achieved GFLOP/s against a measured dense
matmul peak, and the process's peak resident memory. Compilation is excluded: each engine
is warmed up on one epoch before the timed epochs. This is a benchmark, not a test: it
asserts nothing.
"""

from __future__ import annotations

import platform
import resource
import sys
import time
from collections.abc import Sequence
from typing import TextIO

from bnsearch.data import make_synthetic, split_index
from bnsearch.model import NetworkSettings
from bnsearch.results import TrialSpec
from bnsearch.space import PLACEMENTS, BNConfig

__all__ = ["flops_per_sample", "matmul_peak_gflops", "run_benchmark"]


def flops_per_sample(n_features: int, network: NetworkSettings, n_classes: int) -> float:
    """Multiply-adds of the Dense layers, forward (x2 FLOP) and backward (x2 more), i.e.
    ``6 * weights``; BN, activations and the optimiser are a few percent on top."""
    widths = [n_features, *network.hidden_units, n_classes]
    weights = sum(a * b for a, b in zip(widths[:-1], widths[1:], strict=True))
    return 6.0 * weights


def matmul_peak_gflops(size: int = 1024, repeats: int = 20) -> float:
    import tensorflow as tf

    a = tf.random.uniform((size, size))
    b = tf.random.uniform((size, size))
    tf.matmul(a, b).numpy()
    started = time.perf_counter()
    for _ in range(repeats):
        c = tf.matmul(a, b)
    c.numpy()
    return 2 * size**3 * repeats / (time.perf_counter() - started) / 1e9


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _specs(population: int) -> list[TrialSpec]:
    placements = PLACEMENTS[:3]
    return [
        TrialSpec(i, BNConfig(placement=placements[i % 3], learning_rate=0.01), seed=i)
        for i in range(population)
    ]


# long because it is the benchmark script itself: setup, both engines side by side, the table.
def run_benchmark(
    short: bool = False,
    populations: Sequence[int] | None = None,
    n_rows: int | None = None,
    out: TextIO | None = None,
) -> dict[str, float]:
    """Run the benchmark and print its table; returns seconds per trial-epoch by engine."""
    import tensorflow as tf

    from bnsearch.engines import KerasEngine, PopulationEngine

    out = out or sys.stdout
    n_rows = n_rows or (6_000 if short else 26_000)
    populations = populations or ((1, 8, 64) if short else (1, 8, 32, 64, 128))
    timed_epochs = 1 if short else 2
    data = make_synthetic(n_rows, seed=0).standardize(0.2)
    n_train = split_index(n_rows, 0.2)
    flops = flops_per_sample(data.n_features, NetworkSettings(), data.n_classes)
    devices = ", ".join(d.device_type for d in tf.config.list_physical_devices())
    print(
        f"bnsearch bench: {n_rows} x {data.n_features} rows ({n_train} training), batch 16, "
        f"thread network; {timed_epochs} timed epoch(s) after a warm-up epoch\n"
        f"machine: {platform.machine()}, {platform.processor() or 'cpu'}, "
        f"{tf.config.threading.get_inter_op_parallelism_threads() or 'auto'} TF threads, "
        f"devices: {devices}; TensorFlow {tf.__version__}",
        file=out,
        flush=True,
    )
    peak = matmul_peak_gflops()
    print(f"dense matmul peak (1024^2 float32): {peak:.1f} GFLOP/s", file=out, flush=True)
    print(
        f"arithmetic per trial-epoch: {flops * n_train / 1e9:.2f} GFLOP "
        f"({flops / 1e3:.1f} kFLOP per sample)\n",
        file=out,
    )
    header = (
        f"{'engine':<18s}{'s/trial-epoch':>14s}{'speed-up':>10s}{'GFLOP/s':>10s}"
        f"{'% of peak':>10s}{'peak RSS MiB':>14s}"
    )
    print(header, file=out)
    print("-" * len(header), file=out, flush=True)
    figures: dict[str, float] = {}

    def row(name: str, seconds: float) -> None:
        figures[name] = seconds
        speedup = figures["keras"] / seconds
        achieved = flops * n_train / seconds / 1e9
        print(
            f"{name:<18s}{seconds:>14.4f}{speedup:>9.1f}x{achieved:>10.2f}"
            f"{100 * achieved / peak:>9.1f}%{_peak_rss_mib():>14.0f}",
            file=out,
            flush=True,
        )

    keras_engine = KerasEngine()
    spec = _specs(1)
    warm = NetworkSettings(epochs=1)
    keras_engine.train(spec, data, warm)
    started = time.perf_counter()
    keras_engine.train(spec, data, NetworkSettings(epochs=timed_epochs))
    # The Keras engine builds and compiles a model per trial, so this includes one build.
    row("keras", (time.perf_counter() - started) / timed_epochs)
    engine = PopulationEngine(max_population=max(populations))
    for population in populations:
        specs = _specs(population)
        engine.train(specs, data, warm)  # compiles this population size
        started = time.perf_counter()
        engine.train(specs, data, NetworkSettings(epochs=timed_epochs))
        row(
            f"population P={population}",
            (time.perf_counter() - started) / timed_epochs / population,
        )
    best = min(v for k, v in figures.items() if k != "keras")
    print(
        f"\nbest population speed-up over the Keras engine: {figures['keras'] / best:.1f}x",
        file=out,
        flush=True,
    )
    return figures
