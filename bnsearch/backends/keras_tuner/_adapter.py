"""The one module that reaches into Keras Tuner's private API (each ``_``-prefixed member of
a Keras Tuner object, each ``keras_tuner.src`` import), so a Keras Tuner upgrade that moves
one of them breaks this file only."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bnsearch.backends.keras_tuner._files import write_atomically


def set_project_dir(oracle: Any, folder: Path) -> None:
    """Keep ``oracle``'s files in ``folder`` (a tuner does this for the oracles it owns)."""
    oracle._set_project_dir(str(folder.parent), folder.name)


def stopped_on_consecutive_failures(oracle: Any) -> bool:
    """Whether ``oracle`` has reached its limit of consecutive failed trials (from its state)."""
    limit, run = oracle.max_consecutive_failed_trials, 0
    for trial_id in oracle.end_order:
        run = run + 1 if oracle.trials[trial_id].status == "FAILED" else 0
        if run == limit:
            return True
    return False


#: The Bayesian oracle's acquisition is maximised from the best of this many random points.
ACQUISITION_CANDIDATES = 2000
#: ... by this many L-BFGS runs (Keras Tuner starts 50 from random points).
ACQUISITION_STARTS = 5


def screened_bayesian_class(base: type) -> type:
    """Keras Tuner's ``BayesianOptimizationOracle`` maximising its acquisition by L-BFGS from
    the best of many random points, not from 50 random points (the Benchmarks page says why)."""
    import numpy as np
    import scipy.optimize

    class ScreenedBayesianOracle(base):  # type: ignore[misc, valid-type]
        def populate_space(self, trial_id: str) -> dict[str, Any]:
            completed = [t for t in self.trials.values() if t.status == "COMPLETED"]
            dimensions = len(self.hyperparameters.space)
            if len(completed) < (self.num_initial_points or max(3 * dimensions, 3)):
                return self._random_populate_space()
            x, y = self._vectorize_trials()
            x, y = np.nan_to_num(x, posinf=0, neginf=0), np.nan_to_num(y, posinf=0, neginf=0)
            self.gpr.fit(x, y)
            bounds = self._get_hp_bounds()

            def bound(points: Any) -> Any:
                mu, sigma = self.gpr.predict(np.atleast_2d(points), return_std=True)
                return np.asarray(mu).ravel() - self.beta * np.asarray(sigma).ravel()

            candidates = self._random_state.uniform(
                bounds[:, 0], bounds[:, 1], size=(ACQUISITION_CANDIDATES, bounds.shape[0])
            )
            starts = candidates[np.argsort(bound(candidates))[:ACQUISITION_STARTS]]
            runs = [
                scipy.optimize.minimize(
                    lambda v: bound(v)[0], x0=start, bounds=bounds, method="L-BFGS-B"
                )
                for start in starts
            ]
            best = min(runs, key=lambda run: float(np.ravel(run.fun)[0]))
            return {"status": "RUNNING", "values": self._vector_to_values(best.x)}

    ScreenedBayesianOracle.__name__ = f"Screened{base.__name__}"
    return ScreenedBayesianOracle


def make_keras_tuner_saves_atomic() -> None:
    """Make Keras Tuner write its JSON files atomically (its ``utils.save_json`` empties the
    file first: a kill between the two left a ``trial.json`` the next run could not read)."""
    from keras_tuner.src import utils

    def save_json(path: str, obj: Any) -> str:
        text = json.dumps(obj)
        write_atomically(Path(path), text)
        return text

    utils.save_json = save_json
