"""The one definition of the search space: every backend translates from here."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

from bnsearch.errors import ConfigError
from bnsearch.trial._rules import Rule, check, did_you_mean, in_range, one_of

if TYPE_CHECKING:
    from optuna.trial import BaseTrial

DEFAULT_PLACEMENTS: tuple[str, ...] = ("none", "before", "after")
EXTRA_PLACEMENTS: tuple[str, ...] = ("before_output", "input")
PLACEMENTS: tuple[str, ...] = DEFAULT_PLACEMENTS + EXTRA_PLACEMENTS
#: The order placements are listed in: the two the thread compares, ``none``, the extras.
PLACEMENT_ORDER: tuple[str, ...] = ("before", "after", "none", *EXTRA_PLACEMENTS)
ACTIVATIONS: tuple[str, ...] = ("tanh", "relu", "elu", "sigmoid", "linear", "selu", "gelu")


def in_placement_order(placements: Iterable[str]) -> list[str]:
    """``placements``, each once, in :data:`PLACEMENT_ORDER` (others after, sorted)."""
    found = set(placements)
    return [p for p in PLACEMENT_ORDER if p in found] + sorted(found - set(PLACEMENT_ORDER))


#: Each searched number's rule: what a value, and each end of its range, must satisfy.
_BOUNDS: dict[str, Rule] = {
    "momentum": in_range(0.0, 1.0, high_open=True),
    "epsilon": in_range(0.0, math.inf, low_open=True),
    "dropout": in_range(0.0, 1.0, high_open=True),
    "learning_rate": in_range(0.0, math.inf, low_open=True),
}
_BN_CONFIG_RULES: dict[str, Rule] = {
    "placement": one_of(PLACEMENTS),
    "activation": one_of(ACTIVATIONS),
    **_BOUNDS,
    "use_bias": Rule(lambda v: isinstance(v, bool), "true or false"),
}


@dataclass(frozen=True)
class FloatRange:
    """A closed interval ``[low, high]`` (on a log scale if ``log``); ``low == high`` fixes it."""

    low: float
    high: float
    log: bool = False

    @property
    def fixed(self) -> bool:
        return self.low == self.high

    def validate(self, name: str) -> None:
        rule, low, high = _BOUNDS[name], self.low, self.high
        if not (rule.test(low) and rule.test(high)):
            raise ConfigError(
                f"`{name}` must be {rule.text} at both ends, but got {low=}, {high=}."
            )
        if not low <= high:
            raise ConfigError(f"`{name}`: `low <= high` must hold, but got ({low=}, {high=}).")
        if self.log and low <= 0:
            raise ConfigError(f"`{name}` is log-scaled, so `low > 0` must hold, but got {low=}.")

    def override(self, name: str, value: Any) -> FloatRange:
        """This default range changed by a ``[space]`` value: a table, a pair or a number."""
        if isinstance(value, Mapping):
            extra = set(value) - {"low", "high", "log"}
            if extra:
                raise ConfigError(f"`{name}` takes low, high and log, not {sorted(extra)}.")
            low, high = value.get("low", self.low), value.get("high", self.high)
            return FloatRange(low, high, bool(value.get("log", self.log)))
        if isinstance(value, list | tuple) and len(value) == 2:
            return FloatRange(value[0], value[1], self.log)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return FloatRange(value, value, self.log and value > 0)
        raise ConfigError(
            f"`{name}` takes a number, a [low, high] pair or a table, but got {value!r}."
        )

    def points(self, n: int) -> list[float]:
        """``n`` evenly spaced points (geometrically when ``log``), both ends included."""
        if self.fixed or n == 1:
            return [float(self.low)]
        # The last point is ``high`` itself: a product's rounding (0.30000000000000004) would
        # fall outside the range, which Optuna's grid sampler warns of.
        if self.log:
            ratio = (self.high / self.low) ** (1 / (n - 1))
            return [float(self.low * ratio**i) for i in range(n - 1)] + [float(self.high)]
        step = (self.high - self.low) / (n - 1)
        return [float(self.low + step * i) for i in range(n - 1)] + [float(self.high)]


@dataclass(frozen=True)
class BNConfig:
    """One point of the search space: everything that differs between two trials' networks.

    Validated on construction; the field names are also the Optuna and MLflow parameter
    names. The defaults are Keras' with the thread's dropout and learning rate;
    :meth:`thread` gives the thread's own settings.

    Attributes:
        placement: where BatchNormalization sits in each hidden layer: ``none``,
            ``before`` or ``after`` the activation, or an extra, ``before_output`` or
            ``input`` (the docs' search-space guide shows each).
        momentum: BN's momentum for its moving statistics, in ``[0, 1)``.
        epsilon: BN's epsilon, added to the variance; positive.
        use_bias: whether a Dense or Conv2D layer that feeds a BN keeps its bias (BN's
            ``beta`` makes it redundant); every other layer keeps its bias.
        dropout: the dropout rate after each hidden layer, in ``[0, 1)``.
        learning_rate: SGD's learning rate; positive.
        activation: the hidden layers' activation when searched; None keeps the network's.

    Raises:
        ConfigError: a value is out of its range or not one of its choices.

    Examples:
        >>> import bnsearch
        >>> config = bnsearch.BNConfig(placement="after", learning_rate=0.01)
        >>> config.has_bn, config.momentum
        (True, 0.99)
        >>> bnsearch.BNConfig.thread("before").epsilon
        1e-06
        >>> bnsearch.BNConfig(momentum=1.0)
        Traceback (most recent call last):
        ...
        bnsearch.errors.ConfigError: `momentum` must be a number with 0 <= value < 1, but got 1.0.
    """

    placement: str = "before"
    momentum: float = 0.99
    epsilon: float = 1e-3
    use_bias: bool = True
    dropout: float = 0.5
    learning_rate: float = 0.1
    activation: str | None = None

    def __post_init__(self) -> None:
        check(self, _BN_CONFIG_RULES)

    @property
    def has_bn(self) -> bool:
        return self.placement != "none"

    def as_params(self) -> dict[str, Any]:
        """The searched values (``activation`` only when it is searched)."""
        return {k: v for k, v in asdict(self).items() if k != "activation" or v is not None}

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    def replace(self, **changes: Any) -> BNConfig:
        return BNConfig(**{**asdict(self), **changes})

    @classmethod
    def thread(cls, placement: str = "before") -> BNConfig:
        """The settings used in the thread: BN(momentum=0.9, epsilon=1e-6), SGD lr 0.1."""
        return cls(placement=placement, momentum=0.9, epsilon=1e-6, dropout=0.5, learning_rate=0.1)


def _choices(name: str, values: Any, known: tuple[str, ...]) -> tuple[str, ...]:
    chosen = tuple(values)
    unknown = [v for v in chosen if v not in known]
    if unknown:
        raise ConfigError(f"unknown {name} {unknown[0]!r}; choose from {', '.join(known)}.")
    if len(set(chosen)) != len(chosen):
        raise ConfigError(f"`{name}` lists a choice twice: {list(chosen)}.")
    return chosen


@dataclass(frozen=True)
class SearchSpace:
    """The hyperparameters a study searches over, validated on construction.

    Defaults bracket both Keras' defaults (momentum 0.99, epsilon 1e-3) and the thread's
    values (momentum 0.9, epsilon 1e-6, dropout 0.5, learning rate 0.1). A study file's
    ``[space]`` becomes one through :meth:`from_overrides`; :meth:`suggest` and
    :meth:`from_keras_tuner` turn a trial of either library into a :class:`BNConfig`.

    Attributes:
        placement: the placements to compare (default ``none``, ``before``, ``after``).
        momentum: BN's momentum, a :class:`FloatRange`.
        epsilon: BN's epsilon, a :class:`FloatRange` (log scale).
        use_bias: the ``use_bias`` choices, both by default.
        dropout: the dropout rate, a :class:`FloatRange`.
        learning_rate: SGD's learning rate, a :class:`FloatRange` (log scale).
        activation: the activations to search; empty (the default) keeps the network's.

    Raises:
        ConfigError: a choice is unknown or listed twice, or a range is out of bounds.

    Examples:
        >>> import bnsearch
        >>> space = bnsearch.SearchSpace.from_overrides(
        ...     {"placement": ["before", "after"], "learning_rate": [0.01, 0.1]})
        >>> space.placement, space.learning_rate.low, space.learning_rate.log
        (('before', 'after'), 0.01, True)
        >>> bnsearch.SearchSpace.from_overrides({"momentm": 0.9})  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        bnsearch.errors.ConfigError: unknown search-space parameter 'momentm'; did you mean ...
    """

    placement: tuple[str, ...] = DEFAULT_PLACEMENTS
    momentum: FloatRange = field(default_factory=lambda: FloatRange(0.5, 0.999))
    epsilon: FloatRange = field(default_factory=lambda: FloatRange(1e-6, 1e-2, log=True))
    use_bias: tuple[bool, ...] = (True, False)
    dropout: FloatRange = field(default_factory=lambda: FloatRange(0.0, 0.6))
    learning_rate: FloatRange = field(default_factory=lambda: FloatRange(1e-3, 0.3, log=True))
    activation: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        placements = _choices("placement", self.placement, PLACEMENTS)
        if not placements:
            raise ConfigError("`placement` needs at least one choice, e.g. ['before', 'after'].")
        object.__setattr__(self, "placement", placements)
        use_bias = tuple(self.use_bias)
        if not use_bias or any(not isinstance(b, bool) for b in use_bias):
            raise ConfigError(f"`use_bias` choices must be true/false, but got {list(use_bias)}.")
        object.__setattr__(self, "use_bias", use_bias)
        object.__setattr__(self, "activation", _choices("activation", self.activation, ACTIVATIONS))
        for name in _BOUNDS:
            getattr(self, name).validate(name)

    @classmethod
    def from_overrides(cls, overrides: Mapping[str, Any] | None = None) -> SearchSpace:
        """The defaults changed by a mapping such as a study file's ``[space]``: a numeric
        parameter takes ``{"low": .., "high": .., "log": ..}``, a ``[low, high]`` pair, or a
        number that fixes it; the others a list of choices or a single value."""
        defaults, kwargs = cls(), {}
        for key, value in (overrides or {}).items():
            if key not in cls.__dataclass_fields__:
                hint = did_you_mean(key, cls.__dataclass_fields__, "known")
                raise ConfigError(f"unknown search-space parameter {key!r}; {hint}")
            if key in _BOUNDS:
                kwargs[key] = getattr(defaults, key).override(key, value)
            else:
                kwargs[key] = tuple(value) if isinstance(value, list | tuple) else (value,)
        return cls(**kwargs)

    def _table(self, each_range: Callable[[FloatRange], Any]) -> dict[str, Any]:
        table = {
            "placement": list(self.placement),
            "use_bias": list(self.use_bias),
            **{name: each_range(getattr(self, name)) for name in _BOUNDS},
        }
        if self.activation:  # absent otherwise, so older studies keep their fingerprint
            table["activation"] = list(self.activation)
        return table

    def as_dict(self) -> dict[str, Any]:
        return self._table(asdict)

    def fingerprint(self) -> str:
        """A short hash that changes whenever a choice or range changes."""
        text = json.dumps(self.as_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def suggest(self, trial: BaseTrial, placement: str | None = None) -> BNConfig:
        """Ask an Optuna trial for every parameter and return a validated :class:`BNConfig`;
        ``placement`` pins the placement (paired blocks) instead of suggesting it."""
        if placement is None:
            placement = trial.suggest_categorical("placement", list(self.placement))
        values: dict[str, Any] = {
            "placement": placement,
            "use_bias": trial.suggest_categorical("use_bias", list(self.use_bias)),
        }
        for name in _BOUNDS:
            rng: FloatRange = getattr(self, name)
            values[name] = trial.suggest_float(name, rng.low, rng.high, log=rng.log)
        if self.activation:
            values["activation"] = trial.suggest_categorical("activation", list(self.activation))
        return BNConfig(**values)

    def from_keras_tuner(self, hp: Any) -> BNConfig:
        """Declare the space on Keras Tuner ``HyperParameters`` and return this trial's config."""
        values: dict[str, Any] = {"placement": hp.Choice("placement", list(self.placement))}
        if len(self.use_bias) == 1:
            values["use_bias"] = hp.Fixed("use_bias", self.use_bias[0])
        else:
            values["use_bias"] = hp.Boolean("use_bias")
        for name in _BOUNDS:
            rng = getattr(self, name)
            if rng.fixed:
                values[name] = hp.Fixed(name, float(rng.low))
            else:
                sampling = "log" if rng.log else "linear"
                values[name] = hp.Float(name, rng.low, rng.high, sampling=sampling)
        if self.activation:
            values["activation"] = hp.Choice("activation", list(self.activation))
        return BNConfig(**values)

    def grid(self, points_per_range: int = 3) -> dict[str, list[Any]]:
        """Optuna's ``GridSampler`` grid: every choice, ``points_per_range`` values a range."""
        return self._table(lambda rng: rng.points(points_per_range))
