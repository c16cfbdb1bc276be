"""Behaviour both backends share, run against each: one parametrized suite, not two copies."""

from __future__ import annotations

import pytest

from bnsearch.config import StudyConfig
from bnsearch.errors import StudyFailedError
from bnsearch.results import TrialState
from bnsearch.space import SearchSpace
from bnsearch.study import run_study
from tests.conftest import tiny_config, trial_runs

BACKENDS = ["optuna", "keras-tuner"]
EPOCHS = 2


def _config(backend, tiny_csv, stores, **changes) -> StudyConfig:
    return tiny_config(tiny_csv, stores, "shared", backend=backend, **changes)


def _trial_runs(uri: str):
    return trial_runs(uri, "shared")


@pytest.mark.parametrize("backend", BACKENDS)
def test_each_trial_is_one_child_run_with_params_and_one_metric_point_per_epoch(
    backend, tiny_csv, stores
):
    outcome = run_study(_config(backend, tiny_csv, stores))
    client, runs = _trial_runs(stores["tracking_uri"])
    assert len(runs) == len(outcome.new_results) == 3
    for run in runs:
        assert run.info.status == "FINISHED"
        assert run.data.tags["mlflow.parentRunId"] == outcome.parent_run_id
        assert {"placement", "momentum", "epsilon", "use_bias", "dropout", "learning_rate"} <= set(
            run.data.params
        )
        for metric in ("loss", "accuracy", "val_loss", "val_accuracy"):
            steps = [m.step for m in client.get_metric_history(run.info.run_id, metric)]
            assert steps == list(range(EPOCHS)), (metric, steps)
    assert {row.placement for row in outcome.table} <= {"none", "before", "after"}
    assert sum(row.complete for row in outcome.table) == 3
    assert all(r.state is TrialState.COMPLETE for r in outcome.all_results)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_study_whose_trials_all_fail_is_recorded_and_raises(backend, tiny_csv, stores):
    space = SearchSpace.from_overrides({"learning_rate": 1e38, "placement": ["none"]})
    with pytest.raises(StudyFailedError, match="failed"):
        run_study(_config(backend, tiny_csv, stores, n_trials=2, space=space))
    _, runs = _trial_runs(stores["tracking_uri"])
    assert len(runs) == 2
    for run in runs:
        assert run.info.status == "FAILED"
        assert run.data.tags["bnsearch.fail_reason"]
