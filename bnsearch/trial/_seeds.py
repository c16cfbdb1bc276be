"""The seed rule: every trial's seed follows from the study's seed and the trial's number.

A block's trials share the seed of the block's first trial, so they differ only in
placement; the confirmation round draws from a second stream so its seeds never repeat a
search trial's. Both backends take their seeds from here.
"""

from __future__ import annotations

__all__ = ["confirmation_seed", "trial_seed"]

_CONFIRMATION_STREAM = 104_729


def trial_seed(study_seed: int, trial_number: int) -> int:
    """A distinct, reproducible seed per trial of a study."""
    return (study_seed * 1_000_003 + trial_number * 7_919 + 1) % (2**31 - 1)


def confirmation_seed(study_seed: int, round_id: int, k: int) -> int:
    """The ``k``-th seed of a confirmation round, shared by every placement of the round."""
    return trial_seed(study_seed + _CONFIRMATION_STREAM, round_id + k)
