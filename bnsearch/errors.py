"""Errors a user can meet; each carries a one-line message naming the problem and the fix.

The CLI prints ``str(error)`` on stderr and exits with ``error.exit_code``; ``--debug`` adds
the traceback.
"""

from __future__ import annotations

__all__ = [
    "BnsearchError",
    "ConfigError",
    "DataError",
    "StoreError",
    "LockHeldError",
    "StudyFailedError",
    "UsageError",
]


class BnsearchError(Exception):
    """Base class of every error bnsearch reports to the user without a traceback."""

    exit_code = 2


class UsageError(BnsearchError):
    """A command-line argument is wrong."""


class ConfigError(BnsearchError):
    """A search-space range, network setting or study setting makes no sense."""


class DataError(BnsearchError):
    """The dataset cannot be loaded or cannot be trained on."""


class StoreError(BnsearchError):
    """The Optuna storage or the MLflow tracking store cannot be used."""


class StudyFailedError(BnsearchError):
    """The study ran but produced no usable trial (every trial failed)."""

    exit_code = 1


class LockHeldError(BnsearchError):
    """Another bnsearch process is running the same study on this machine."""

    exit_code = 3
