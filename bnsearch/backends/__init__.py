"""Backends decide *what* to try next; engines decide how to train it."""

from bnsearch.backends._optuna import (
    best_per_placement,
    close_stale_trials,
    closed_message,
    open_study,
    results_from_study,
    run_confirmation,
    run_trials,
    search_trial_count,
    trial_seed,
)

__all__ = [
    "best_per_placement",
    "close_stale_trials",
    "closed_message",
    "open_study",
    "results_from_study",
    "run_confirmation",
    "run_trials",
    "search_trial_count",
    "trial_seed",
]
