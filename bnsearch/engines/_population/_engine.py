"""The population engine: chunks of trials, each trained in a compiled :class:`Population`."""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bnsearch.data import Dataset, split_index
from bnsearch.engines._base import EpochCallback, TrainOutput
from bnsearch.engines._keras import model_fits_data
from bnsearch.engines._population._graph import SlotUse, graph_for, graph_or_reason, member_rank
from bnsearch.engines._population._members import member_model
from bnsearch.errors import ConfigError
from bnsearch.networks import FAMILIES, LayerGraph, NetworkSettings, network_graph, probe_configs
from bnsearch.trial import SearchSpace, TrialRecorder, TrialResult, TrialSpec, TrialState

if TYPE_CHECKING:
    from bnsearch.engines._population._population import Population

# Per (member, batch row, output value): the value, its gradient, a BN's or a mask's temporaries.
_BYTES_PER_ACTIVATION = 4 * 4


def estimate_memory_bytes(
    population: int, dataset: Dataset, network: NetworkSettings, graph: LayerGraph
) -> int:
    """A rough upper bound of one chunk's working memory (the docs' population engine page)."""
    n_val = dataset.n_rows - split_index(dataset.n_rows, network.validation_split)
    per_step = population * network.batch_size * graph.activation_width * _BYTES_PER_ACTIVATION
    val = population * n_val * (dataset.n_features + 3 * graph.widest) * 4
    params = population * graph.parameters * 4 * 4
    return per_step + val + params + dataset.x.nbytes * 2


def machine_memory_bytes() -> int:
    """The physical memory, or a container's limit below it."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    try:  # cgroup v2: "max" or a number of bytes
        return min(total, int(Path("/sys/fs/cgroup/memory.max").read_text()))
    except (OSError, ValueError):
        return total


#: Half the machine's memory (the rest is for TensorFlow, the data, MLflow and the rest).
MEMORY_LIMIT_BYTES = machine_memory_bytes() // 2


MAX_CACHED_POPULATIONS = 4
# A chunk of more trials than this trains a convolutional network in two lanes.
_LANE_MIN_TRIALS = 16
# Compiled populations of this process, shared by every PopulationEngine (``load`` resets
# every variable, so a population carries nothing from one use to the next).
_COMPILED: dict[tuple[Any, ...], Population] = {}
#: The most convolutions a network may have for its population to be compiled with XLA.
XLA_MAX_CONVOLUTIONS = 8
#: The fewest steps (epochs times batches an epoch) a population trains for its epoch loop to
#: be compiled with XLA by default: below it, XLA's longer compile costs more than its faster
#: steps save (figures on the docs' Benchmarks page).
XLA_MIN_STEPS = 1000
#: The most trials trained at once in graph mode (two lanes of 16 on 2+ cores): beyond it, a
#: network of dozens of convolutions runs no faster per trial and needs more memory.
GRAPH_MODE_MAX_POPULATION = 32


@dataclass(eq=False)
class PopulationEngine:
    """Trains up to ``max_population`` trials at once in one vectorised TensorFlow graph.

    ``jit_compile``: the epoch loop compiled with XLA (a network of at most
    ``XLA_MAX_CONVOLUTIONS`` convolutions); None, the default, where it repays its compile:
    a population of at least ``XLA_MIN_STEPS`` steps. ``shuffle=False``: the training rows
    in order every epoch (the parity tests). ``population_size``: every chunk's graph of
    exactly that size (``replay``); else the next power of two, or a compiled graph with room.
    """

    name = "population"
    max_population: int = 64
    shuffle: bool = True
    jit_compile: bool | None = None
    memory_limit_bytes: int = MEMORY_LIMIT_BYTES
    population_size: int | None = None
    #: The last chunk's populations (lanes) and their trials, for its members' models.
    last_lanes: list[_Lane] = field(default_factory=list, init=False, repr=False)

    @property
    def last_population(self) -> Population | None:
        """The last chunk's population when it trained in one lane (None before any)."""
        if len(self.last_lanes) > 1:
            raise ValueError("the last chunk trained in lanes; use member(p) to find a trial")
        return self.last_lanes[0].population if self.last_lanes else None

    @property
    def trials_at_once(self) -> int:
        return self.max_population

    def check_fits(self, dataset: Dataset, network: NetworkSettings) -> str | None:
        """Refuse a ``--model`` that does not suit the data or a network of which not one
        trial fits the memory limit; halve a population too large for it, saying so."""
        model_fits_data(dataset, network)
        graph = graph_for(network, dataset)
        said = None
        if not self.xla_for(graph) and self.max_population > GRAPH_MODE_MAX_POPULATION:
            self.max_population = GRAPH_MODE_MAX_POPULATION
            said = (
                f"bnsearch: notice: this network has {graph.convolutions} convolutions, so "
                f"the population engine builds it without XLA and trains "
                f"{GRAPH_MODE_MAX_POPULATION} trials at a time."
            )
        limit = self.memory_limit_bytes
        need = lambda size: estimate_memory_bytes(size, dataset, network, graph)  # noqa: E731
        if (one := need(1)) > limit:
            raise ConfigError(
                f"one trial of this network on {dataset.n_rows} rows needs about "
                f"{one / 2**30:.1f} GiB on the population engine, over the "
                f"{limit / 2**30:.1f} GiB limit (half this machine's memory); use "
                "--engine keras (one model.fit per trial), or fewer rows."
            )
        size = self.max_population
        while size > 1 and need(size) > limit:
            size //= 2
        if size == self.max_population:
            return said
        said = (
            f"bnsearch: notice: a population of {self.max_population} would need about "
            f"{need(self.max_population) / 2**30:.1f} GiB, over the {limit / 2**30:.1f} GiB "
            f"limit (half this machine's memory); the engine trains {size} trials at a time "
            "instead."
        )
        self.max_population = size
        return said

    @staticmethod
    def untrainable(
        network: NetworkSettings, dataset: Dataset | None = None, space: SearchSpace | None = None
    ) -> str | None:
        """Why this engine cannot train ``network`` (None if it can): the first layer it
        has no form for, or how a ``builder`` network on ``dataset`` departs from the
        ``--model`` rule for ``space``'s placements."""
        if network.kind in FAMILIES:
            return None
        if network.kind != "custom":
            graph = network_graph(network)
        elif dataset is None:
            return "a network from `builder` before its data is loaded"
        else:
            space = space or SearchSpace()
            probes = probe_configs(space.placement, space.activation)
            graph = graph_or_reason(network, dataset, probes)
        return graph if isinstance(graph, str) else None

    @classmethod
    def trains(
        cls,
        network: NetworkSettings,
        dataset: Dataset | None = None,
        space: SearchSpace | None = None,
    ) -> bool:
        return cls.untrainable(network, dataset, space) is None

    def train(
        self,
        specs: Sequence[TrialSpec],
        dataset: Dataset,
        network: NetworkSettings,
        on_epoch: EpochCallback | None = None,
        keep_models: bool = False,
    ) -> TrainOutput:
        if self.max_population < 1:
            raise ConfigError(f"`max_population` must be >= 1, got {self.max_population}.")
        graph = graph_for(network, dataset, [spec.config for spec in specs])
        # A searched activation changes the graph: one population per activation.
        groups: dict[str, list[int]] = {}
        for index, spec in enumerate(specs):
            groups.setdefault(spec.config.activation or "", []).append(index)
        results: list[TrialResult | None] = [None] * len(specs)
        models: list[Any] = [None] * len(specs)
        for activation, members in groups.items():
            members.sort(key=lambda i: member_rank(specs[i]))  # as a population takes them
            group_graph = graph.with_site_activation(activation)
            for start in range(0, len(members), self.max_population):
                chunk = members[start : start + self.max_population]
                prunes = [on_epoch and functools.partial(on_epoch, i) for i in chunk]
                trained = self._train_chunk(
                    [specs[i] for i in chunk], dataset, network, group_graph, prunes
                )
                for p, (index, result) in enumerate(zip(chunk, trained, strict=True)):
                    results[index] = result
                    if keep_models and result.state is TrialState.COMPLETE:
                        models[index] = member_model(
                            *self.member(p), specs[index], dataset, network
                        )
        return TrainOutput(results, models if keep_models else [])  # type: ignore[arg-type]

    def _population(
        self,
        n_specs: int,
        dataset: Dataset,
        network: NetworkSettings,
        graph: LayerGraph,
        slot_use: SlotUse,
        lane: int = 0,
    ) -> Population:
        """A compiled population for ``n_specs`` trials in ``lane``: the smallest compiled
        one with at most 4x room to spare, else a new one of the next power of two."""
        steps = network.epochs * -(
            -split_index(dataset.n_rows, network.validation_split) // network.batch_size
        )
        xla, n = self.xla_for(graph, steps), network
        shape = (lane, dataset.fingerprint, graph, xla, slot_use, n.sgd_momentum, n.lr_decay,
                 n.batch_size, n.validation_split)  # fmt: skip
        fitting = [
            key[0]
            for key in _COMPILED
            if key[1:] == shape and n_specs <= key[0] <= min(4 * n_specs, self.max_population)
        ]
        if self.population_size is not None:
            size = max(self.population_size, n_specs)
        elif fitting:
            size = min(fitting)
        else:
            # the next power of two: chunks of similar size share one compiled graph
            size = min(1 << max(n_specs - 1, 0).bit_length(), self.max_population)
        key = (size, *shape)
        limit, need = self.memory_limit_bytes, estimate_memory_bytes(size, dataset, network, graph)
        if need > limit:
            raise ConfigError(
                f"a population of {size} on {dataset.n_rows} rows needs about "
                f"{need / 2**30:.1f} GiB, over the {limit / 2**30:.1f} GiB limit (half this "
                "machine's memory); lower --population (or use fewer rows)."
            )
        if key not in _COMPILED:
            from bnsearch.engines._population._population import Population  # TensorFlow

            # A few populations' graphs (one per searched activation) and no more keeps
            # memory flat over a long study.
            while len(_COMPILED) >= MAX_CACHED_POPULATIONS:
                del _COMPILED[next(iter(_COMPILED))]
            _COMPILED[key] = Population(size, dataset, network, xla, slot_use, graph)
        return _COMPILED[key]

    def xla_for(self, graph: LayerGraph, steps: int | None = None) -> bool:
        """Whether ``graph``'s epoch loop is compiled with XLA for a population that trains
        ``steps`` steps (None: as many as it takes)."""
        if self.jit_compile is False or graph.convolutions > XLA_MAX_CONVOLUTIONS:
            return False
        return bool(self.jit_compile) or steps is None or steps >= XLA_MIN_STEPS

    def _lanes(self, n_specs: int, graph: LayerGraph) -> list[tuple[int, int]]:
        """The chunk's lanes, ``(start, stop)`` each, trained at once in threads: two for a
        convolutional network of over 16 trials on 2+ cores (XLA leaves a core idle between a
        convolutional step's small calls), else one."""
        has_conv = any(graph.ops[i].cls == "Conv2D" for i in graph.cores)
        one = not has_conv or n_specs <= _LANE_MIN_TRIALS or self.population_size is not None
        if one or (os.cpu_count() or 1) < 2:
            return [(0, n_specs)]
        half = (n_specs + 1) // 2
        return [(0, half), (half, n_specs)]

    def _train_chunk(
        self,
        specs: list[TrialSpec],
        dataset: Dataset,
        network: NetworkSettings,
        graph: LayerGraph,
        prunes: Sequence[Callable[[int, dict[str, float]], bool] | None],
    ) -> list[TrialResult]:
        import tensorflow as tf

        started = time.perf_counter()
        n = len(specs)
        lanes = []
        for k, (lo, stop) in enumerate(self._lanes(n, graph)):
            use = SlotUse.of(specs[lo:stop])
            population = self._population(stop - lo, dataset, network, graph, use, k)
            population.load(specs[lo:stop])
            lanes.append(_Lane(population, lo, stop))
        self.last_lanes = lanes
        n_train = split_index(dataset.n_rows, network.validation_split)
        flat = dataset.x.reshape(dataset.n_rows, -1)
        x_val, y_val = (tf.constant(v[n_train:], tf.float32) for v in (flat, dataset.y_onehot))
        rngs = [np.random.default_rng(spec.seed) for spec in specs]
        recorders = [
            TrialRecorder(s, self.name, prune) for s, prune in zip(specs, prunes, strict=True)
        ]
        second = "mae" if dataset.regression else "accuracy"
        names = ("loss", second, "val_loss", f"val_{second}")  # the order _Lane.epoch gives
        epoch_of = functools.partial(
            _Lane.epoch, batch=network.batch_size, x_val=x_val, y_val=y_val
        )
        with ThreadPoolExecutor(max_workers=len(lanes)) as pool:
            for epoch in range(network.epochs):
                if all(recorder.stopped for recorder in recorders):
                    break
                if self.shuffle:  # each trial's rows this epoch
                    order = np.stack([rng.permutation(n_train) for rng in rngs]).astype(np.int32)
                else:
                    order = np.tile(np.arange(n_train, dtype=np.int32), (n, 1))
                parts = pool.map(epoch_of, lanes, [order] * len(lanes))
                *columns, active = (np.concatenate(c) for c in zip(*parts, strict=True))
                for p, recorder in enumerate(recorders):
                    if recorder.stopped:
                        continue
                    metrics = {m: float(c[p]) for m, c in zip(names, columns, strict=True)}
                    # ``active`` is cleared in the graph by a member's non-finite batch loss.
                    if recorder.record_epoch(epoch, metrics, diverged=not active[p]):
                        active[p] = False
                for lane in lanes:
                    lane.set_active(active[lane.start : lane.stop])
        # Who trained together, in how large a graph: the replay's recipe (per lane).
        wall = (time.perf_counter() - started) / n
        return [
            replace(recorders[p].result(wall), population=lane.population.size, batch=numbers)
            for lane in lanes
            for numbers in [tuple(sorted(s.number for s in specs[lane.start : lane.stop]))]
            for p in range(lane.start, lane.stop)
        ]

    def member(self, p: int) -> tuple[Population, int]:
        """Member ``p`` of the last chunk: its lane's population and its place there."""
        for lane in self.last_lanes:
            if lane.start <= p < lane.stop:
                return lane.population, p - lane.start
        raise IndexError(f"the last chunk has no member {p}")


@dataclass(frozen=True)
class _Lane:
    """The trials ``start:stop`` of a chunk, trained in their own ``population``."""

    population: Population
    start: int
    stop: int

    def epoch(self, order: np.ndarray, batch: int, x_val: Any, y_val: Any) -> list[np.ndarray]:
        """Per trial of this lane: the epoch's four metrics and whether it is still active."""
        population, n = self.population, self.stop - self.start
        rows = order[self.start : self.stop]
        rows = np.concatenate([rows, np.repeat(rows[:1], population.size - n, axis=0)])
        loss_sum, correct_sum = population.run_epoch(rows, batch)
        val_loss, val_second = population.evaluate(x_val, y_val)
        n_train = order.shape[1]
        columns = (loss_sum / n_train, correct_sum / n_train, val_loss, val_second)
        return [c.numpy()[:n] for c in (*columns, population.active)]

    def set_active(self, active: np.ndarray) -> None:
        flags = self.population.active.numpy()
        flags[: self.stop - self.start] = active
        self.population.active.assign(flags)
