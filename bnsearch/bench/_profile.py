"""Where a population training step's time goes (``python -m bnsearch bench --profile``):
the engine's XLA-compiled epoch timed with parts of its step removed one after another
(:data:`REMOVALS`), each part's time the difference it makes. A benchmark, not a test."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from bnsearch.data import Dataset, load_dataset, make_synthetic, split_index
from bnsearch.engines import SlotUse
from bnsearch.networks import NetworkSettings
from bnsearch.trial import DEFAULT_PLACEMENTS, BNConfig, TrialSpec

if TYPE_CHECKING:
    from bnsearch.engines import Population

REMOVALS: tuple[tuple[str, str], ...] = (
    ("dropout", "dropout hash and mask"),
    ("bn", "BatchNormalization (forward, backward, moving statistics)"),
    ("optimizer", "optimizer beyond w -= lr*g (momentum, masking, decay)"),
)


def profile_specs(population: int) -> list[TrialSpec]:
    """``population`` trials cycling through none/before/after (lr 0.01), seeds 0, 1, ..."""
    return [
        TrialSpec(i, BNConfig(placement=DEFAULT_PLACEMENTS[i % 3], learning_rate=0.01), seed=i)
        for i in range(population)
    ]


def matmul_floor_seconds(
    population: int, widths: Sequence[int], batch: int = 16, steps: int = 300
) -> float:
    """Seconds per step of an MLP step's matrix products alone at ``population``: per Dense
    layer one forward product, and backward the kernel gradient and (but for the first
    layer) the input gradient, in an XLA loop as the engine runs them."""
    import tensorflow as tf

    kernels = [
        tf.Variable(tf.random.normal((population, a, b)) * 0.1)
        for a, b in zip(widths[:-1], widths[1:], strict=True)
    ]
    inputs = tf.random.normal((population, batch, widths[0]))

    @tf.function(jit_compile=True)
    def loop(n: Any) -> Any:
        total = tf.zeros(())
        for i in tf.range(n):
            x = inputs + tf.cast(i, tf.float32) * 1e-6
            activations = [x]
            for kernel in kernels:
                activations.append(tf.matmul(activations[-1], kernel))
            delta = activations[-1]
            for d in reversed(range(len(kernels))):
                grad = tf.matmul(activations[d], delta, transpose_a=True)
                total += tf.reduce_sum(grad[:, 0, 0])
                if d:
                    delta = tf.matmul(delta, kernels[d], transpose_b=True)
        return total

    return _best_seconds(lambda: loop(tf.constant(steps)), steps)


def _best_seconds(run: Callable[[], Any], steps: int) -> float:
    """Seconds a step: the best of three calls of ``run`` after one that compiles."""
    run().numpy()
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        run().numpy()
        best = min(best, (time.perf_counter() - started) / steps)
    return best


def _ablated(removed: frozenset[str], *args: Any) -> Population:
    """The engine's population with the parts named in ``removed`` taken out of the step."""
    import tensorflow as tf

    from bnsearch.engines import Population

    class Ablated(Population):
        def _dropout(self, a: Any, counter: Any, noise: tuple[float, ...] = ()) -> Any:
            return a if "dropout" in removed else super()._dropout(a, counter, noise)

        def _bn(self, x: Any, slot: str, training: bool, updates: list, span: Any = None) -> Any:
            return x if "bn" in removed else super()._bn(x, slot, training, updates, span)

        def _apply_gradients(self, grads: list[Any], live3: Any) -> None:
            if "optimizer" not in removed:
                super()._apply_gradients(grads, live3)
                return
            lr = tf.reshape(self.lr, [-1, 1, 1])
            for param, grad in zip(self.params, grads, strict=True):
                param.assign_sub(lr * grad)

    return Ablated(*args)


def digits_cnn() -> tuple[Dataset, NetworkSettings]:
    """The digits CNN of ``studies/digits_cnn.toml`` as the benchmarks run it: the standardised
    8x8 digit images and the network (conv 16-32, dense 64, ReLU, He init)."""
    network = NetworkSettings(
        family="cnn", conv_filters=(16, 32), kernel_size=3, hidden_units=(64,),
        activation="relu", initializer="he_uniform",
    )  # fmt: skip
    return load_dataset("sklearn:digits", images=True, standardize=True), network


def _epoch_loss(population: Population, batches: Any) -> Any:
    return population.train_epoch(batches)[0]


def _gather_loop_seconds(population: Population, batches: Any, steps: int) -> float:
    """A loop of the same length that only gathers each step's batch."""
    import tensorflow as tf

    @tf.function(jit_compile=True)
    def loop(batches: Any) -> Any:
        total = tf.zeros(())
        for step in tf.range(tf.shape(batches)[0]):
            total += tf.reduce_sum(tf.gather(population.x_train, batches[step]))
        return total

    return _best_seconds(lambda: loop(batches), steps)


def _profile_family(
    name: str, data: Dataset, network: NetworkSettings, size: int
) -> dict[str, float]:
    import tensorflow as tf

    specs = profile_specs(size)
    n_train = split_index(data.n_rows, network.validation_split)
    steps = n_train // network.batch_size
    rng = np.random.default_rng(0)
    order = np.stack([rng.permutation(n_train) for _ in range(size)]).astype(np.int32)
    rows = order[:, : steps * network.batch_size]
    batches = tf.constant(rows.reshape(size, steps, network.batch_size).transpose(1, 0, 2))
    times: dict[str, float] = {}
    removed: frozenset[str] = frozenset()
    for part in ("full", *(part for part, _ in REMOVALS)):
        if part != "full":  # each row removes its part and every part above it
            removed |= {part}
        population = _ablated(removed, size, data, network, True, SlotUse.of(specs))
        population.load(specs)
        times[part] = _best_seconds(functools.partial(_epoch_loss, population, batches), steps)
    times["loop"] = _gather_loop_seconds(population, batches, steps)
    n_params = sum(int(np.prod(p.shape)) for p in population.params)
    full = previous = times["full"]
    say = functools.partial(print, flush=True)

    def line(label: str, seconds: float) -> None:
        say(f"  {label:<58s}{1e3 * seconds:>7.2f} ms{100 * seconds / full:>5.0f}%")

    say(
        f"\n{name}, P={size}: {1e3 * full:.2f} ms a step "
        f"({n_params / size:,.0f} parameters a member)"
    )
    for part, label in REMOVALS:
        line(label, previous - times[part])
        previous = times[part]
    if network.kind == "mlp":
        widths = [data.n_features, *network.hidden_units, data.n_classes]
        products = matmul_floor_seconds(size, widths, network.batch_size, steps)
        line("of what is left: the matrix products alone", products)
    line("forward and backward pass (what is left)", previous)
    say(f"  {'of it, the loop and its gathers':<58s}{1e3 * times['loop']:>7.2f} ms")
    width = sum(int(np.prod(op.shape)) for op in population.graph.ops if op.kind == "core")
    say(
        f"  bytes a step: optimizer {20 * n_params / 1e6:.1f} MB (20 per parameter), forward "
        f"activations {4 * size * network.batch_size * width / 1e6:.1f} MB"
    )
    return times


def profile_steps(population: int = 64) -> dict[str, dict[str, float]]:
    """Profile both families' training step at ``population``; seconds a step by variant."""
    print(
        f"bnsearch bench --profile: one XLA training step of the population engine, P="
        f"{population}, with parts removed one after another (best of 3 epochs)",
        flush=True,
    )
    families = {
        "MLP (thread)": (make_synthetic(6000, seed=0).standardize(0.2), NetworkSettings()),
        "CNN (digits)": digits_cnn(),
    }
    return {n: _profile_family(n, *f, population) for n, f in families.items()}
