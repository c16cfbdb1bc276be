"""An anytime-valid confidence sequence for the median of paired differences.

A study run ``--until settled`` looks at its blocks after every batch and stops as soon as
the answer is known. Testing at 5 % after each look would not do: repeated looks inflate the
false-positive rate (about 14 % after five looks, 25 % after twenty). A *confidence
sequence* is an interval ``C_n`` for every number of blocks ``n`` with

    P(the true median lies in C_n for every n at once) >= 1 - alpha,

so it may be read after every batch, and the study stopped at any of them, without losing
its coverage.

The construction is sign-based, like the median it estimates: a block whose trial diverged
to a huge finite loss counts as one sign, whatever its size. For a candidate median ``m``
let ``S_n(m) = #{i <= n : d_i < m}``. If the true median is at least ``m`` then
``P(d_i < m) <= 1/2`` and

    E_n(S) = 2^n * integral_{1/2}^{1} p^S (1 - p)^(n - S) * 2 dp

(the likelihood ratio of "d < m with probability p" against probability 1/2, mixed over a
uniform prior on p in [1/2, 1]) is a nonnegative supermartingale with E_0 = 1. By Ville's
inequality it exceeds ``2 / alpha`` at any time with probability at most ``alpha / 2``;
``m`` is then ruled out as too high. The mirror image (``#{d_i > m}``) rules out ``m`` as too
low. ``E_n`` grows with ``S``, so both rules reduce to one count ``k*(n)``, the fewest signs
that rule a value out, and the sequence is an interval between order statistics:

    C_n = [ k*-th largest d,  k*-th smallest d ]   (unbounded while k*(n) > n).

Ties (differences exactly equal to ``m``, common for accuracy) count for neither side,
which keeps the sequence valid, only wider. With ``alpha = 0.05`` the first interval that
can be bounded needs 8 blocks (:func:`min_blocks_to_settle`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np

__all__ = [
    "ALPHA",
    "median_confidence_sequence",
    "min_blocks_to_settle",
    "ruling_count",
    "settle",
    "sign_e_value",
]

#: Error rate of the sequence: it misses the true median at some look with at most this
#: probability.
ALPHA = 0.05


def sign_e_value(n: int, count: int) -> float:
    """``E_n`` after ``n`` differences of which ``count`` fell on the tested side."""
    from scipy import special

    if n == 0:
        return 1.0
    # 2^(n+1) * B(S+1, n-S+1) * P(Beta(S+1, n-S+1) > 1/2), in logs against overflow.
    a, b = count + 1, n - count + 1
    tail = special.betainc(b, a, 0.5)  # = 1 - I_{1/2}(a, b)
    if tail <= 0:
        return 0.0
    return math.exp((n + 1) * math.log(2) + special.betaln(a, b) + math.log(tail))


@functools.lru_cache(maxsize=4096)
def ruling_count(n: int, alpha: float = ALPHA) -> int:
    """``k*(n)``: the fewest of ``n`` signs on one side that rule a candidate median out
    (``n + 1`` when even ``n`` of them cannot)."""
    for count in range(n // 2, n + 1):
        if sign_e_value(n, count) >= 2 / alpha:
            return count
    return n + 1


@functools.lru_cache(maxsize=16)
def min_blocks_to_settle(alpha: float = ALPHA) -> int:
    """The fewest blocks after which the sequence can be bounded on both sides."""
    n = 1
    while ruling_count(n, alpha) > n:
        n += 1
    return n


def median_confidence_sequence(
    differences: Sequence[float], alpha: float = ALPHA
) -> tuple[float, float]:
    """The interval ``C_n`` for the median of ``differences`` (``-inf``/``inf`` ends while
    there are too few of them)."""
    values = np.sort(np.asarray(differences, dtype=float))
    n = len(values)
    k = ruling_count(n, alpha)
    if k > n:
        return -math.inf, math.inf
    return float(values[n - k]), float(values[k - 1])


def settle(low: float, high: float, threshold: float) -> str | None:
    """The stopping rule on an interval for ``first − second``: ``"below"`` when it lies
    wholly below ``-threshold``, ``"above"`` when wholly above ``+threshold`` (placement
    matters, one way or the other), ``"inside"`` when wholly inside ``(-threshold,
    +threshold)`` (no effect larger than the threshold), else None (not settled)."""
    if high < -threshold:
        return "below"
    if low > threshold:
        return "above"
    if -threshold < low and high < threshold:
        return "inside"
    return None
