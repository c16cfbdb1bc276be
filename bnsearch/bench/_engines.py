"""``python -m bnsearch bench``: the Keras engine and the population engine side by side
(the docs' Benchmarks page explains the columns); a benchmark, not a test."""

from __future__ import annotations

import functools
import math
import platform
import resource
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from bnsearch.bench._profile import digits_cnn, matmul_floor_seconds, profile_specs
from bnsearch.data import Dataset, load_dataset, make_synthetic, split_index
from bnsearch.engines import Engine, KerasEngine, PopulationEngine
from bnsearch.networks import NetworkSettings
from bnsearch.trial import TrialSpec


def _mean_seconds(run: Callable[[], Any], repeats: int) -> float:
    """Seconds a call of ``run`` (a TensorFlow op) after one untimed call."""
    run().numpy()
    started = time.perf_counter()
    for _ in range(repeats):
        out = run()
    out.numpy()
    return (time.perf_counter() - started) / repeats


def _machine_peaks() -> tuple[float, float]:
    """The dense 1024^2 float32 matmul's GFLOP/s and the streaming memory bandwidth (GB/s:
    read one 256 MiB float32 array and write another)."""
    import tensorflow as tf

    a, b = tf.random.uniform((1024, 1024)), tf.random.uniform((1024, 1024))
    gflops = 2 * 1024**3 / _mean_seconds(lambda: tf.matmul(a, b), 20) / 1e9
    source = tf.Variable(tf.random.uniform((256 * 2**20 // 4,)))
    scale = tf.function(lambda: source * 1.0001 + 1.0, jit_compile=True)
    return gflops, 2 * source.shape[0] * 4 / _mean_seconds(scale, 10) / 1e9


# long because it is the benchmark script itself: setup, both engines side by side, the table.
def run_benchmark(
    short: bool = False,
    populations: Sequence[int] | None = None,
    n_rows: int | None = None,
) -> dict[str, float]:
    """Run the benchmark and print its table; returns seconds per trial-epoch by engine."""
    import tensorflow as tf

    say = functools.partial(print, flush=True)
    n_rows = n_rows or (6_000 if short else 26_000)
    populations = populations or ((1, 8, 64) if short else (1, 8, 32, 64, 128))
    timed_epochs = 1 if short else 2
    data = make_synthetic(n_rows, seed=0).standardize(0.2)
    n_train = split_index(n_rows, 0.2)
    widths = [data.n_features, *NetworkSettings().hidden_units, data.n_classes]
    pairs = list(zip(widths[:-1], widths[1:], strict=True))
    # Dense multiply-adds forward (2 FLOP) and backward (4): BN and the rest are a few %.
    flops = 6.0 * sum(a * b for a, b in pairs)
    devices = ", ".join(d.device_type for d in tf.config.list_physical_devices())
    say(
        f"bnsearch bench: {n_rows} x {data.n_features} rows ({n_train} training), batch 16, "
        f"thread network; {timed_epochs} timed epoch(s) after a warm-up epoch\n"
        f"machine: {platform.machine()}, {platform.processor() or 'cpu'}, "
        f"{tf.config.threading.get_inter_op_parallelism_threads() or 'auto'} TF threads, "
        f"devices: {devices}; TensorFlow {tf.__version__}"
    )
    peak, bandwidth = _machine_peaks()
    say(
        f"dense matmul peak (1024^2 float32): {peak:.1f} GFLOP/s; streaming memory bandwidth: "
        f"{bandwidth:.1f} GB/s\narithmetic per trial-epoch: {flops * n_train / 1e9:.2f} GFLOP "
        f"({flops / 1e3:.1f} kFLOP per sample)\n"
    )
    header = (
        f"{'engine':<18s}{'s/trial-epoch':>14s}{'speed-up':>10s}{'GFLOP/s':>10s}"
        f"{'% of peak':>10s}{'matmul s':>10s}{'in matmul':>10s}{'update floor':>13s}"
        f"{'peak RSS MiB':>14s}"
    )
    say(header)
    say("-" * len(header))
    figures: dict[str, float] = {}
    n_params = sum(a * b + b for a, b in pairs)
    steps_per_epoch = -(-n_train // 16)

    def row(name: str, seconds: float, population: int = 0) -> None:
        figures[name] = seconds
        speedup = figures["keras"] / seconds
        achieved = flops * n_train / seconds / 1e9
        roofline = f"{'':>10s}{'':>10s}{'':>13s}"
        rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        if population:
            matmul = matmul_floor_seconds(population, widths) * steps_per_epoch / population
            update = 5 * 4 * n_params * steps_per_epoch / (bandwidth * 1e9)
            roofline = f"{matmul:>10.4f}{100 * matmul / seconds:>9.0f}%{update:>13.5f}"
        say(
            f"{name:<18s}{seconds:>14.4f}{speedup:>9.1f}x{achieved:>10.2f}"
            f"{100 * achieved / peak:>9.1f}%{roofline}{rss_mib:>14.0f}"
        )

    network = NetworkSettings()
    # The Keras engine builds and compiles a model per trial, so this includes one build.
    row("keras", _epoch_seconds(KerasEngine(), profile_specs(1), data, network, timed_epochs))
    engine = PopulationEngine(max_population=max(populations))
    for population in populations:
        specs = profile_specs(population)
        seconds = _epoch_seconds(engine, specs, data, network, timed_epochs) / population
        row(f"population P={population}", seconds, population)
    best = min(v for k, v in figures.items() if k != "keras")
    say(f"\nbest population speed-up over the Keras engine: {figures['keras'] / best:.1f}x")
    with tempfile.TemporaryDirectory(prefix="bnsearch-bench-") as folder:
        for case in _cases(data, short, max(populations), folder, (peak, bandwidth)):
            figures.update(_side_by_side(case, timed_epochs))
    return figures


def _epoch_seconds(
    engine: Engine, specs: list[TrialSpec], data: Dataset, network: NetworkSettings, epochs: int
) -> float:
    """Seconds an epoch of ``specs`` on ``engine``, timed after a warm-up epoch."""
    engine.train(specs, data, replace(network, epochs=1))
    started = time.perf_counter()
    engine.train(specs, data, replace(network, epochs=epochs))
    return (time.perf_counter() - started) / epochs


#: A row of the benchmark after the thread's MLP: prefix, title, data, network, population.
_Case = tuple[str, str, Dataset, NetworkSettings, int]


def _side_by_side(case: _Case, timed_epochs: int) -> dict[str, float]:
    """Under the case's title, seconds per trial-epoch of its network on both engines."""
    prefix, title, data, network, population = case
    print(f"\n{title}")
    figures: dict[str, float] = {}
    population_engine = PopulationEngine(population)
    if said := population_engine.check_fits(data, network):  # as a study sizes it
        print(said)
    population = population_engine.max_population
    for name, engine, specs in (
        (f"{prefix} keras", KerasEngine(), profile_specs(1)),
        (f"{prefix} population P={population}", population_engine, profile_specs(population)),
    ):
        seconds = _epoch_seconds(engine, specs, data, network, timed_epochs)
        figures[name] = seconds / len(specs)
        speedup = figures[f"{prefix} keras"] / figures[name]
        print(f"{name:<28s}{figures[name]:>10.4f} s/trial-epoch{speedup:>8.1f}x")
    return figures


def training_flops(model: Any) -> int:
    """FLOP to train ``model`` on one sample: each Dense and convolution's forward
    multiply-adds (a kernel's size times its output positions), three times (forward, input
    gradient, kernel gradient), two FLOP each."""
    kernels = ("kernel", "depthwise_kernel", "pointwise_kernel")
    macs = sum(
        math.prod(weight.shape) * math.prod(layer.output.shape[1:-1])
        for layer in model.layers
        for weight in layer.weights
        if weight.name in kernels
    )
    return 6 * macs


def _floors(model: Any, data: Dataset, peaks: tuple[float, float]) -> str:
    """A trial-epoch's two lower bounds on this machine, in words: its training arithmetic
    at the dense matmul peak, and its optimizer update (five passes over the weights a
    step: read weight, gradient and velocity, write two) at the streaming memory bandwidth."""
    network = NetworkSettings()
    n_train = split_index(data.n_rows, network.validation_split)
    gflop = training_flops(model) * n_train / 1e9
    steps = -(-n_train // network.batch_size)
    update = 5 * 4 * model.count_params() * steps / (peaks[1] * 1e9)
    return (
        f"\nfloors per trial-epoch: {gflop:.1f} GFLOP of training arithmetic, "
        f"{gflop / peaks[0]:.2f} s at the matmul peak; the update of "
        f"{model.count_params():,} weights, {update:.2f} s at the memory bandwidth"
    )


def _cases(
    data: Dataset, short: bool, population: int, folder: str, peaks: tuple[float, float]
) -> Iterator[_Case]:
    """The thread's model as a ``.keras`` file, the digits CNN, the residual example and, but
    for ``short``, two applications (with their floors on this machine's ``peaks``: GFLOP/s,
    GB/s)."""
    import keras
    import numpy as np
    from keras import layers

    keras.Sequential(
        [keras.Input((14,)), layers.Dense(64), layers.Activation("tanh"), layers.Dropout(0.5)]
        + [layers.Dense(64), layers.Activation("tanh"), layers.Dropout(0.5)]
        + [layers.Dense(2), layers.Activation("softmax")]
    ).save(f"{folder}/thread.keras")
    title = "the thread's network as a .keras file (--model), same rows"
    yield "model", title, data, NetworkSettings(model=f"{folder}/thread.keras"), population
    size = 16 if short else 64
    digits, cnn = digits_cnn()
    title = (
        f"digits CNN (studies/digits_cnn.toml): {digits.n_rows} images 8x8x1, conv 16-32, "
        "dense 64, batch 16"
    )
    yield "cnn", title, digits, cnn, size
    digits = load_dataset("sklearn:digits", images=True)
    example = Path(__file__).resolve().parents[2] / "studies" / "residual_digits.py"
    if not example.is_file():  # an installed package without the repository's studies/
        print(f"\nresidual example: {example} not found; run bench from a clone")
    else:
        title = (
            f"residual example (studies/residual_digits.py, --model): {digits.n_rows} images "
            "8x8x1, five 3x3 convolutions of 16 filters, two Add, batch 16"
        )
        yield "residual", title, digits, NetworkSettings(model=f"{example}:build"), size
    if short:  # minutes of XLA compilation: the full run only
        return
    # MobileNetV2 and ResNet50V2 (weights=None) on the first 512 digits scaled to 32x32x3.
    images = np.kron(digits.x[:512], np.ones((1, 4, 4, 3), np.float32))
    np.savez(f"{folder}/digits32.npz", X=images, y=digits.y[:512])
    data = load_dataset(f"{folder}/digits32.npz")
    for name in ("MobileNetV2", "ResNet50V2"):
        path = f"{folder}/{name}.keras"
        application = getattr(keras.applications, name)
        model = application(weights=None, input_shape=(32, 32, 3), classes=10)
        model.save(path)
        title = (
            f"{name} (keras.applications, --model): {data.n_rows} digits images scaled "
            f"to 32x32x3, batch 16{_floors(model, data, peaks)}"
        )
        yield name, title, data, NetworkSettings(model=path), population
