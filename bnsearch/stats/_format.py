"""Numbers as a person reads them in a message: significant digits whatever their size, and
plain Python values (never a NumPy repr such as ``np.float64(0.5)``: :func:`plain`, from
:mod:`bnsearch.trial`, the one place that rule lives)."""

from __future__ import annotations

import math

from bnsearch.trial import plain

__all__ = [
    "MIN_BLOCKS_CI",
    "MIN_IMPORTANCE_TRIALS",
    "MIN_SEEDS_TO_RANK",
    "RUNAWAY",
    "counted",
    "difference_text",
    "loss_text",
    "plain",
    "significant",
    "too_few",
]

#: A value this large is a run-away: a diverged trial's :data:`~bnsearch.trial.DIVERGED_LOSS`
#: (3.4e38), a difference or an interval bound interpolated between such values, or a loss
#: blown up past any a network that trains reaches. No number of that size is printed.
RUNAWAY = 1e20

#: The fewest paired blocks a bootstrap interval of the median is computed from (fewer: it
#: reads ``n/a (2 blocks)``); Wilcoxon's p-value and ``d_z`` need two.
MIN_BLOCKS_CI = 3
#: The fewest completed search trials the hyperparameter importances are shown for: fANOVA
#: fits a random forest to the trials, and over fewer it ranks noise (three trials, one
#: block, gave ``placement 1.00``).
MIN_IMPORTANCE_TRIALS = 10
#: The fewest fresh seeds a placement's confirmed best needs for a standard deviation and a
#: place in the confirmation's ranking (one seed: its mean is one run).
MIN_SEEDS_TO_RANK = 2


def counted(n: int, unit: str) -> str:
    """``1 block``, ``2 blocks``: a count and its noun."""
    return f"{n} {unit}{'' if n == 1 else 's'}"


def too_few(n: int, unit: str = "block") -> str:
    """What a statistic that needs more data reads, the one wording everywhere:
    ``n/a (1 block)``, ``n/a (2 blocks)``, ``n/a (1 seed)``."""
    return f"n/a ({counted(n, unit)})"


def significant(value: float, digits: int = 4, signed: bool = False, zeros: bool = False) -> str:
    """A number in significant digits, whatever its size.

    Args:
        value: The number: ``-0.1494``, ``+0.0144``, ``-1.135e+16`` (a loss blown up, still
            printed), ``inf``, NaN (no data: reads ``n/a``); a run-away (:data:`RUNAWAY` or
            more, such as a difference against a diverged trial, which stands for the
            largest float32) reads ``inf``.
        digits: How many significant digits.
        signed: Always show the sign.
        zeros: Keep trailing zeros (``-0.170``: for columns and run names that line up).

    Returns:
        The text; never a number of a diverged trial's sentinel's size.
    """
    value = float(value)
    if math.isnan(value):
        return "n/a"  # a statistic without data; never printed as "nan"
    # A difference against a diverged trial (trial.DIVERGED_LOSS), or a bound interpolated
    # between such differences (a bootstrap percentile), reads as what it means.
    if math.isinf(value) or abs(value) >= RUNAWAY:
        return ("+inf" if signed else "inf") if value > 0 else "-inf"
    spec = f"{'+' if signed else ''}{'#' if zeros else ''}.{digits}g"
    text = format(value, spec)
    return text[:-1] if text.endswith(".") else text


def difference_text(value: float) -> str:
    """A difference or an interval's bound as the verdict prints it: four significant
    digits, signed (``-0.1494``, ``+0.0144``; see :func:`significant`)."""
    return significant(value, 4, signed=True)


def loss_text(value: float, decimals: int = 4) -> str:
    """A loss or an accuracy as such values usually read, ``decimals`` decimals
    (``0.3721``), and significant digits for a diverged one (``1.135e+16``), whose
    fixed-point digits would run across the line; ``n/a`` for none (NaN)."""
    value = float(value)
    if math.isnan(value):
        return "n/a"
    if not math.isfinite(value) or abs(value) < 1e4:
        return f"{value:.{decimals}f}"
    return significant(value, decimals)
