"""The seed rule: a trial's seed follows from the study's seed and its number (a block shares
its first trial's); the confirmation round draws from a second stream, so never repeats one."""

from __future__ import annotations

_CONFIRMATION_STREAM = 104_729
#: Where each kind of layer's seeds start within a trial's thousand (the k-th Dense kernel
#: draws from ``seed*1000 + k``); "other" is a ``--model``'s other linear layers. Both
#: engines draw the same initial weights from these.
_LAYER_OFFSETS = {"dense": 0, "conv": 100, "dropout": 500, "other": 600}


def trial_seed(study_seed: int, trial_number: int) -> int:
    """A distinct, reproducible seed per trial of a study."""
    return (study_seed * 1_000_003 + trial_number * 7_919 + 1) % (2**31 - 1)


def layer_seed(trial_seed: int, kind: str, index: int) -> int:
    """The seed of a trial's ``index``-th layer of ``kind`` (dense, conv, dropout, other)."""
    return trial_seed * 1000 + _LAYER_OFFSETS[kind] + index


def confirmation_seed(study_seed: int, round_id: int, k: int) -> int:
    """The ``k``-th seed of a confirmation round, shared by every placement of the round."""
    return trial_seed(study_seed + _CONFIRMATION_STREAM, round_id + k)
