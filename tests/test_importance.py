"""The importance line ranks placement as the paired design does: first where placement moves
the loss, near nothing where only the learning rate does (real Optuna studies and evaluator)."""

from __future__ import annotations

import numpy as np
import optuna
import pytest

from bnsearch.backends.optuna import study_importances

DISTRIBUTIONS = {
    "placement": optuna.distributions.CategoricalDistribution(("none", "before", "after")),
    "learning_rate": optuna.distributions.FloatDistribution(0.001, 0.3, log=True),
    "momentum": optuna.distributions.FloatDistribution(0.0, 0.99),
}


def _study(loss_of) -> optuna.Study:
    """60 paired blocks (three placements at one draw of the other parameters) whose final
    val_loss is ``loss_of(params, noise)``."""
    rng = np.random.default_rng(0)
    study = optuna.create_study()
    for _ in range(60):
        shared = {
            "learning_rate": float(np.exp(rng.uniform(np.log(0.001), np.log(0.3)))),
            "momentum": float(rng.uniform(0.0, 0.99)),
        }
        for placement in ("none", "before", "after"):
            params = {"placement": placement, **shared}
            value = loss_of(params, float(rng.normal(0, 0.005)))
            study.add_trial(
                optuna.trial.create_trial(params=params, distributions=DISTRIBUTIONS, value=value)
            )
    return study


@pytest.fixture(autouse=True)
def _quiet():
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def test_placement_ranks_first_where_it_moves_the_loss():
    effect = {"none": 0.69, "before": 0.52, "after": 0.68}
    study = _study(lambda p, noise: effect[p["placement"]] + 0.01 * p["momentum"] + noise)
    importances = study_importances(study)
    assert max(importances, key=importances.get) == "placement"
    assert importances["placement"] > 0.5


def test_placement_ranks_near_nothing_where_only_the_learning_rate_matters():
    study = _study(lambda p, noise: 0.7 - 0.05 * np.log(p["learning_rate"]) + noise)
    importances = study_importances(study)
    assert max(importances, key=importances.get) == "learning_rate"
    assert importances["placement"] < 0.05


def test_the_same_study_gives_the_same_importances():
    effect = {"none": 0.69, "before": 0.52, "after": 0.68}
    study = _study(lambda p, noise: effect[p["placement"]] + noise)
    assert study_importances(study) == study_importances(study)


def test_a_study_over_the_cap_is_ranked_from_a_seeded_sample(monkeypatch, capfd):
    """Past ``IMPORTANCE_MAX_TRIALS`` completed trials the importances come from a seeded
    sample (fANOVA's time grows faster than the trials): the same answer every time, the
    same ranking as the whole study's, and no line of Optuna's on the terminal."""
    import bnsearch.backends.optuna._storage as storage

    study = _study(lambda p, noise: 0.5 + {"none": 0.2, "before": 0.0, "after": 0.1}[
        p["placement"]] + noise)  # fmt: skip
    whole = study_importances(study)
    monkeypatch.setattr(storage, "IMPORTANCE_MAX_TRIALS", 90)  # half of the 180 trials
    optuna.logging.set_verbosity(optuna.logging.INFO)
    sampled = study_importances(study)
    assert sampled == study_importances(study)
    assert sampled != whole  # a sample, not the whole study
    assert max(sampled, key=sampled.get) == max(whole, key=whole.get) == "placement"
    assert "A new study created" not in capfd.readouterr().err
