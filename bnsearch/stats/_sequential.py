"""An anytime-valid confidence sequence for the median of paired differences (a sign-based
test martingale, ruled out at ``2 / alpha``), and the closed test that names the BN placements
beating ``none``; the reasoning is in docs/explanation/the-two-questions.md."""

from __future__ import annotations

import enum
import functools
import itertools
import math

import numpy as np
from numpy.typing import ArrayLike

#: Error rate of the sequence: it misses the true median at some look at most this often.
ALPHA = 0.05


class Side(enum.IntEnum):
    """Where the interval of ``first − second`` lies against the threshold (``OPEN``: not
    settled); an IntEnum, so :func:`settle_codes` holds the same numbers."""

    OPEN = 0
    BELOW = 1
    INSIDE = 2
    ABOVE = 3

    @property
    def flipped(self) -> Side:
        """The same side seen from the other member, ``second − first``."""
        return self if self is Side.OPEN else Side(4 - self)  # BELOW <-> ABOVE


class Outcome(enum.StrEnum):
    """An answer's outcome, as stored in MLflow tags, Optuna attributes and JSON; the
    placement question's claim is the better placement's own name instead."""

    HELPS = "helps"  # does BN help: one or more BN placements beat `none`
    NO_HELP = "no-help"  # each decided, none better: `none` is as good or better
    NO_EFFECT = "no-effect"  # every comparison within the threshold
    INCONCLUSIVE = "inconclusive"
    INSUFFICIENT = "insufficient"  # too few blocks for an interval
    NOT_COMPARED = "not-compared"  # does BN help, without a `none` placement
    UNANSWERED = "unanswered"  # the validation rows cannot rank the placements


def sign_e_value(n: int, count: int) -> float:
    """The mixture e-value after ``n`` differences of which ``count`` fell on the tested side."""
    from scipy import special

    # 2^(n+1) * B(S+1, n-S+1) * P(Beta(S+1, n-S+1) > 1/2), in logs against overflow.
    a, b = count + 1, n - count + 1
    tail = special.betainc(b, a, 0.5)  # = 1 - I_{1/2}(a, b)
    if tail <= 0:
        return 0.0
    return math.exp((n + 1) * math.log(2) + special.betaln(a, b) + math.log(tail))


@functools.lru_cache(maxsize=4096)
def ruling_count(n: int) -> int:
    """``k*(n)``: the fewest of ``n`` signs on one side that rule a candidate median out."""
    return next((c for c in range(n // 2, n + 1) if sign_e_value(n, c) >= 2 / ALPHA), n + 1)


@functools.cache
def min_blocks_to_settle() -> int:
    """The fewest blocks after which the sequence can be bounded on both sides."""
    return next(n for n in itertools.count(1) if ruling_count(n) <= n)


def median_confidence_sequence(differences: ArrayLike) -> tuple[float, float]:
    """The interval ``C_n`` for the median of ``differences`` (infinite while too few)."""
    low, high = confidence_bounds(np.asarray(differences, dtype=float))
    return float(low), float(high)


def settle(low: float, high: float, threshold: float) -> Side:
    """The stopping rule on an interval for ``first − second``."""
    return Side(int(settle_codes(low, high, threshold)))


@functools.lru_cache(maxsize=64)
def _ruling_table(size: int) -> np.ndarray:
    return np.array([ruling_count(n) for n in range(size + 1)])


def confidence_bounds(differences: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """:func:`median_confidence_sequence` along the last axis (NaN: left out)."""
    values = np.sort(np.asarray(differences, dtype=float), axis=-1)  # NaN sorts last
    if values.shape[-1] == 0:
        shape = values.shape[:-1]
        return np.full(shape, -math.inf), np.full(shape, math.inf)
    n = np.sum(~np.isnan(values), axis=-1)
    k = _ruling_table(values.shape[-1])[n]
    bounded = k <= n
    k = np.where(bounded, k, 1)
    low = np.take_along_axis(values, np.maximum(n - k, 0)[..., None], axis=-1)[..., 0]
    high = np.take_along_axis(values, (k - 1)[..., None], axis=-1)[..., 0]
    return np.where(bounded, low, -math.inf), np.where(bounded, high, math.inf)


def settle_codes(low: ArrayLike, high: ArrayLike, threshold: float) -> np.ndarray:
    """:func:`settle` element by element."""
    low, high = np.asarray(low, float), np.asarray(high, float)
    codes = np.full(low.shape, Side.OPEN.value)
    codes = np.where((-threshold < low) & (high < threshold), Side.INSIDE.value, codes)
    codes = np.where(low > threshold, Side.ABOVE.value, codes)
    return np.where(high < -threshold, Side.BELOW.value, codes)


def selection_test(beyond: np.ndarray, present: np.ndarray) -> np.ndarray:
    """The test of a set of placements (the last axis; blocks on the one before): each
    block bets on the placement with the most ``beyond`` blocks so far, and the set is
    rejected when the bets' signs rule ``-threshold`` out."""
    present = np.asarray(present, bool)
    beyond = np.asarray(beyond, bool) & present
    *lead, blocks, _ = beyond.shape
    counts = np.zeros((*lead, beyond.shape[-1]), int)
    bets = np.zeros(lead, int)
    hits = np.zeros(lead, int)
    for i in range(blocks):
        pick = np.argmax(counts, axis=-1)[..., None]
        bets += np.take_along_axis(present[..., i, :], pick, axis=-1)[..., 0]
        hits += np.take_along_axis(beyond[..., i, :], pick, axis=-1)[..., 0]
        counts += beyond[..., i, :]
    return hits >= _ruling_table(blocks)[bets]


def closed_test(beyond: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Which placements (the last axis) the closed test names as beyond."""
    beyond, present = np.asarray(beyond, bool), np.asarray(present, bool)
    m = beyond.shape[-1]
    named = np.ones((*beyond.shape[:-2], m), bool)
    for size in range(1, m + 1):
        for columns in map(list, itertools.combinations(range(m), size)):
            rejected = selection_test(beyond[..., columns], present[..., columns])
            named[..., columns] &= rejected[..., None]  # each member named only if every set is
    return named


def settle_against_none(
    differences: np.ndarray, threshold: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each BN placement against ``none`` until settled: ``differences`` ``(..., blocks,
    placements)`` signed so that below favours BN, NaN where missing. Returns the codes
    (``BELOW`` only where the closed test names it too) and the intervals' ends."""
    diffs = np.asarray(differences, float)
    low, high = confidence_bounds(np.swapaxes(diffs, -1, -2))
    codes = settle_codes(low, high, threshold)
    present = ~np.isnan(diffs)
    named = closed_test(present & (np.nan_to_num(diffs) < -threshold), present)
    return np.where((codes == Side.BELOW) & ~named, Side.OPEN.value, codes), low, high


def bn_outcomes(codes: np.ndarray, bounded: np.ndarray) -> np.ndarray:
    """The answer to "does BN help?" from each BN placement's side seen from BN (the last
    axis); ``bounded``: whether each interval has finite ends."""
    codes = np.asarray(codes)
    if codes.shape[-1] == 0:
        return np.full(codes.shape[:-1], Outcome.NOT_COMPARED, dtype=object)
    helps = np.any(codes == Side.BELOW, axis=-1)
    decided = np.all((codes == Side.INSIDE) | (codes == Side.ABOVE), axis=-1)
    inside = np.all(codes == Side.INSIDE, axis=-1)
    none_bounded = ~np.any(np.asarray(bounded, bool), axis=-1)
    return np.select(
        [helps, inside, decided, none_bounded],
        [Outcome.HELPS, Outcome.NO_EFFECT, Outcome.NO_HELP, Outcome.INSUFFICIENT],
        Outcome.INCONCLUSIVE,
    ).astype(object)
