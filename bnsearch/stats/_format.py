"""Numbers as a person reads them in a message: significant digits whatever their size, and
plain Python values (never a NumPy repr such as ``np.float64(0.5)``: :func:`plain`, from
:mod:`bnsearch.trial`, the one place that rule lives)."""

from __future__ import annotations

import math

from bnsearch.trial import plain

__all__ = ["loss_text", "plain", "significant"]

#: Numbers this large come from :data:`~bnsearch.trial.DIVERGED_LOSS`, never from training.
_SENTINEL_SCALE = 1e30  # far below trial.DIVERGED_LOSS (3.4e38)


def significant(value: float, digits: int = 4, signed: bool = False, zeros: bool = False) -> str:
    """``value`` in ``digits`` significant digits: ``-0.1494``, ``+0.0144``, ``-1.135e+16``
    (a diverged bound), ``inf`` (also for a difference against a diverged trial, which
    stands for the largest float32); ``signed`` always shows the sign, ``zeros`` keeps trailing
    zeros (``-0.170``: for columns and run names that should line up)."""
    value = float(value)
    if math.isnan(value):
        return "nan"
    # A difference against a diverged trial (trial.DIVERGED_LOSS), or a bound interpolated
    # between such differences (a bootstrap percentile), reads as what it means: no loss a
    # network reaches comes near 1e30, while the sentinel is 3.4e38.
    if math.isinf(value) or abs(value) >= _SENTINEL_SCALE:
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
