"""The one validation mechanism: a :class:`Rule` is a test and the words that complete
"`name` must be ..."; :func:`check` applies a table of them, raising a one-line ConfigError."""

from __future__ import annotations

import difflib
import math
import operator
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from bnsearch.errors import ConfigError


def plain(value: Any) -> Any:
    """NumPy scalars as Python values (``np.float64(0.5)`` → ``0.5``), in lists and tuples too."""
    if isinstance(value, (list, tuple)):
        return type(value)(plain(v) for v in value)
    item = getattr(value, "item", None)
    if callable(item) and type(value).__module__ == "numpy":
        return item()
    return value


def shown(value: Any) -> str:
    """``value`` as a message shows it: ``1``, not ``np.int64(1)``; strings quoted."""
    value = plain(value)
    if isinstance(value, tuple | list):
        return "[" + ", ".join(shown(v) for v in value) + "]"
    return repr(value) if isinstance(value, str) else str(value)


@dataclass(frozen=True)
class Rule:
    """``test(value)`` must hold; ``text`` completes "`name` must be ...". A rule made by
    :func:`one_of` words its refusal as "unknown name 'x'; choose one of ..."."""

    test: Callable[[Any], bool]
    text: str
    choices: tuple[str, ...] = ()
    hint: str = ""

    def message(self, name: str, value: Any) -> str:
        if self.choices:
            listed = ", ".join(self.choices)
            return f"unknown {name} {shown(value)}; choose one of {listed}{self.hint}."
        return f"`{name}` must be {self.text}, but got {shown(value)}."


def one_of(choices: Iterable[str], hint: str = "") -> Rule:
    """The value is one of ``choices`` (``hint`` is added to the refusal, e.g. "; or ...")."""
    options = tuple(choices)
    return Rule(lambda v: v in options, f"one of {', '.join(options)}", options, hint)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and not math.isnan(value)


def in_range(low: float, high: float, low_open: bool = False, high_open: bool = False) -> Rule:
    """A number between ``low`` and ``high``; ``*_open`` leaves that end out."""
    above = operator.gt if low_open else operator.ge
    below = operator.lt if high_open else operator.le
    ends = f"{low:g} {'<' if low_open else '<='} value"
    ends += f" {'<' if high_open else '<='} {high:g}" if math.isfinite(high) else ""
    text = f"a number with {ends}"
    return Rule(lambda v: _is_number(v) and above(v, low) and below(v, high), text)


NON_NEGATIVE_INT = Rule(lambda v: _is_int(v) and v >= 0, "a non-negative integer")
POSITIVE_INT = Rule(lambda v: _is_int(v) and v >= 1, "a positive integer")
POSITIVE_INTS = Rule(
    lambda v: isinstance(v, tuple | list) and bool(v) and all(_is_int(u) and u >= 1 for u in v),
    "a list of positive integers",
)
POSITIVE_SECONDS = Rule(
    lambda v: _is_number(v) and math.isfinite(v) and v > 0, "a positive number of seconds"
)
NON_NEGATIVE = Rule(lambda v: _is_number(v) and v >= 0, ">= 0")


def check(holder: object, rules: Mapping[str, Rule]) -> None:
    """Apply ``rules`` (field name → rule) to ``holder``'s fields; ``None`` means "not set"."""
    for name, rule in rules.items():
        value = getattr(holder, name)
        if value is not None and not rule.test(value):
            raise ConfigError(rule.message(name, value))


def did_you_mean(key: str, known: Iterable[str], label: str) -> str:
    """``did you mean 'x'?`` for a misspelt ``key``, else ``<label>: a, b, c.``"""
    names = sorted(known)
    close = difflib.get_close_matches(key, names, n=1)
    return f"did you mean {close[0]!r}?" if close else f"{label}: {', '.join(names)}."
