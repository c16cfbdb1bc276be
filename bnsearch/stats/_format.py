"""Numbers as a person reads them in a message: significant digits whatever their size, and
plain Python values (never a NumPy repr such as ``np.float64(0.5)``: :func:`plain`, from
:mod:`bnsearch.trial`, the one place that rule lives)."""

from __future__ import annotations

import math

from bnsearch.trial import plain

__all__ = ["RUNAWAY", "loss_text", "plain", "significant"]

#: A value this large is a run-away: a diverged trial's :data:`~bnsearch.trial.DIVERGED_LOSS`
#: (3.4e38), a difference or an interval bound interpolated between such values, or a loss
#: blown up past any a network that trains reaches. No number of that size is printed.
RUNAWAY = 1e20


def significant(value: float, digits: int = 4, signed: bool = False, zeros: bool = False) -> str:
    """A number in significant digits, whatever its size.

    Args:
        value: The number: ``-0.1494``, ``+0.0144``, ``-1.135e+16`` (a loss blown up, still
            printed), ``inf``; a run-away (:data:`RUNAWAY` or more, such as a difference
            against a diverged trial, which stands for the largest float32) reads ``inf``.
        digits: How many significant digits.
        signed: Always show the sign.
        zeros: Keep trailing zeros (``-0.170``: for columns and run names that line up).

    Returns:
        The text; never a number of a diverged trial's sentinel's size.
    """
    value = float(value)
    if math.isnan(value):
        return "nan"
    # A difference against a diverged trial (trial.DIVERGED_LOSS), or a bound interpolated
    # between such differences (a bootstrap percentile), reads as what it means.
    if math.isinf(value) or abs(value) >= RUNAWAY:
        return ("+inf" if signed else "inf") if value > 0 else "-inf"
    spec = f"{'+' if signed else ''}{'#' if zeros else ''}.{digits}g"
    text = format(value, spec)
    return text[:-1] if text.endswith(".") else text


def loss_text(value: float, decimals: int = 4) -> str:
    """A loss or an accuracy as such values usually read, ``decimals`` decimals
    (``0.3721``), and significant digits for a diverged one (``1.135e+16``), whose
    fixed-point digits would run across the line."""
    value = float(value)
    if not math.isfinite(value) or abs(value) < 1e4:
        return f"{value:.{decimals}f}"
    return significant(value, decimals)
