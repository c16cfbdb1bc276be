"""Backends decide *what* to try next; engines decide how to train it."""

from bnsearch.backends._optuna import open_study, results_from_study, run_trials, trial_seed

__all__ = ["open_study", "results_from_study", "run_trials", "trial_seed"]
