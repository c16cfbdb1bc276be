"""The records that cross module boundaries: what to train (TrialSpec), what happened
(TrialResult, stored so a study reads back without MLflow)."""

from __future__ import annotations

import enum
import json
import math
from dataclasses import dataclass, field
from typing import Any

from bnsearch.trial._space import BNConfig

#: What an engine records per epoch for every task (keys of ``TrialResult.history``).
METRICS = ("loss", "accuracy", "val_loss", "val_accuracy")
#: What it records besides, where the task has it: a regression's mean absolute error.
TASK_METRICS = ("mae", "val_mae")
#: The final-epoch metrics a verdict can be read on (``--metric``).
VERDICT_METRICS = ("val_loss", "val_accuracy", "val_mae")


def lower_is_better(metric: str) -> bool:
    """Losses fall as a network improves; accuracies rise."""
    return "accuracy" not in metric


class Phase(str, enum.Enum):
    """The paired search, or the confirmation round (each placement's best re-trained with
    fresh seeds); its value is what stores hold (``str(Phase.SEARCH) == "search"``)."""

    SEARCH = "search"
    CONFIRM = "confirm"

    def __str__(self) -> str:  # Enum's __format__ then uses it too
        return str.__str__(self)


class TrialState(str, enum.Enum):
    """How a trial ended: ``COMPLETE`` (trained every epoch), ``PRUNED`` (stopped early by
    the pruner) or ``FAILED`` (an exception, or a loss that turned NaN/inf). Its value is
    what stores and MLflow hold, as Optuna names the same states."""

    COMPLETE = "COMPLETE"
    PRUNED = "PRUNED"
    FAILED = "FAILED"


@dataclass(frozen=True)
class TrialSpec:
    """One network to train: its configuration, its seed and, for paired designs, its block.

    Attributes:
        number: the backend's trial number (Optuna's ``trial.number``).
        config: the trial's BN configuration.
        seed: the seed of its weights, shuffling and dropout masks (shared by its block).
        block: its paired block (whose trials differ in placement only); in the
            confirmation round, the round; None outside a paired design.
        phase: a search trial or a confirmation round's (see :class:`Phase`).

    Examples:
        >>> import bnsearch
        >>> spec = bnsearch.TrialSpec(number=3, config=bnsearch.BNConfig("after"), seed=7)
        >>> spec.config.placement, str(spec.phase)
        ('after', 'search')
    """

    number: int
    config: BNConfig
    seed: int
    block: int | None = None
    phase: Phase = Phase.SEARCH


@dataclass
class TrialResult:
    """The outcome of one trial; its objective, ``value``, is the final validation loss:
    what the configuration delivers as configured (no early-stopping cherry-pick).

    Attributes:
        spec: what was trained (configuration, seed, block).
        state: how the trial ended.
        history: each of :data:`METRICS` per epoch trained (a regression adds ``mae`` and
            ``val_mae``).
        fail_reason: why a FAILED or PRUNED trial stopped; None otherwise.
        wall_time_s: the training time in seconds (a population's shared among its members).
        engine: the engine that trained it (``population`` or ``keras``).
        population: the size of the compiled population that trained it (else 0).
        batch: the trial numbers of that population, in order (its own among them): what
            ``replay`` needs to train it again exactly.

    Examples:
        >>> import bnsearch
        >>> spec = bnsearch.TrialSpec(number=0, config=bnsearch.BNConfig("before"), seed=0)
        >>> result = bnsearch.TrialResult(spec, bnsearch.TrialState.COMPLETE, history={
        ...     "loss": [0.7, 0.5], "accuracy": [0.5, 0.8],
        ...     "val_loss": [0.69, 0.52], "val_accuracy": [0.55, 0.79]})
        >>> result.value, result.epochs_trained, result.best("val_accuracy")
        (0.52, 2, 0.79)
    """

    spec: TrialSpec
    state: TrialState
    history: dict[str, list[float]] = field(default_factory=lambda: {m: [] for m in METRICS})
    fail_reason: str | None = None
    wall_time_s: float = 0.0
    engine: str = ""
    population: int = 0
    batch: tuple[int, ...] = ()

    @property
    def config(self) -> BNConfig:
        return self.spec.config

    @property
    def epochs_trained(self) -> int:
        return len(self.history.get("val_loss", []))

    def final(self, metric: str) -> float | None:
        values = self.history.get(metric, [])
        return values[-1] if values else None

    def best(self, metric: str) -> float | None:
        values = [v for v in self.history.get(metric, []) if math.isfinite(v)]
        return (min if lower_is_better(metric) else max)(values, default=None)

    @property
    def value(self) -> float | None:
        """The objective (final validation loss); ``None`` unless the trial completed."""
        return self.final("val_loss") if self.state is TrialState.COMPLETE else None

    def to_json(self) -> str:
        spec = self.spec
        return json.dumps(
            {
                "number": spec.number,
                "config": self.config.as_params(),
                "seed": spec.seed,
                "block": spec.block,
                "phase": spec.phase,
                "state": self.state.value,
                **{name: getattr(self, name) for name in _JSON_FIELDS},
                "batch": list(self.batch),
            }
        )

    @classmethod
    def from_json(cls, text: str) -> TrialResult:
        data: dict[str, Any] = json.loads(text)
        spec = TrialSpec(
            data["number"],
            BNConfig(**data["config"]),
            data["seed"],
            data.get("block"),
            Phase(data.get("phase", Phase.SEARCH)),
        )
        rest = {name: data[name] for name in _JSON_FIELDS if name in data}
        return cls(spec, TrialState(data["state"]), batch=tuple(data.get("batch", ())), **rest)


#: The TrialResult fields its JSON holds as they are.
_JSON_FIELDS = ("history", "fail_reason", "wall_time_s", "engine", "population")


@dataclass
class StoredTrials:
    """What a backend's store holds, for MLflow to catch up with: the outcomes, the trials in
    flight (any process's) and each trial's MLflow study run (where known)."""

    results: list[TrialResult]
    running: set[int] = field(default_factory=set)
    parents: dict[int, str] = field(default_factory=dict)
