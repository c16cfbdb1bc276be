"""Numbers as a person reads them in a message: significant digits whatever their size."""

from __future__ import annotations

import math

#: A value this large is a run-away (a diverged trial's sentinel, or a loss blown up past any
#: a network that trains reaches); no number of that size is printed.
RUNAWAY = 1e20

#: The fewest paired blocks a bootstrap interval of the median is computed from.
MIN_BLOCKS_CI = 3
#: The fewest completed search trials the hyperparameter importances are shown for (over
#: fewer, fANOVA's forest ranks noise).
MIN_IMPORTANCE_TRIALS = 10
#: The fewest fresh seeds a placement's confirmed best needs for a standard deviation and a
#: place in the confirmation's ranking.
MIN_SEEDS_TO_RANK = 2


def counted(n: int, unit: str) -> str:
    """``1 block``, ``2 blocks``: a count and its noun."""
    return f"{n} {unit}{'' if n == 1 else 's'}"


def too_few(n: int, unit: str = "block") -> str:
    """What a statistic that needs more data reads: ``n/a (1 block)``, ``n/a (2 seeds)``."""
    return f"n/a ({counted(n, unit)})"


def significant(value: float, digits: int = 4, signed: bool = False, zeros: bool = False) -> str:
    """``value`` in ``digits`` significant digits (``-0.1494``, ``-1.135e+16``); NaN reads
    ``n/a``, a run-away ``inf``. ``zeros`` keeps trailing zeros, for columns that line up."""
    value = float(value)
    if math.isnan(value):
        return "n/a"  # a statistic without data; never printed as "nan"
    if math.isinf(value) or abs(value) >= RUNAWAY:
        return ("+inf" if signed else "inf") if value > 0 else "-inf"
    spec = f"{'+' if signed else ''}{'#' if zeros else ''}.{digits}g"
    text = format(value, spec)
    return text[:-1] if text.endswith(".") else text


def difference_text(value: float) -> str:
    """A difference or an interval's bound as the verdict prints it: ``-0.1494``."""
    return significant(value, 4, signed=True)


def loss_text(value: float, decimals: int = 4) -> str:
    """A loss or an accuracy in ``decimals`` decimals (``0.3721``), a diverged one in
    significant digits (``1.135e+16``); ``n/a`` for NaN."""
    value = float(value)
    if math.isnan(value):
        return "n/a"
    if not math.isfinite(value) or abs(value) < 1e4:
        return f"{value:.{decimals}f}"
    return significant(value, decimals)
