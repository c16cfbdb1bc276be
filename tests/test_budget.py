"""When a paired study stops: its budget as a cap, and --until settled stopping as soon as
the anytime-valid verdict has answered (both backends, a shared study's target too)."""

from __future__ import annotations

import optuna
import pytest

from bnsearch.backends import batch_room
from bnsearch.config import StudyConfig
from tests.conftest import empty_mlflow_store_at, trial_runs

# The default data's raw features make `before` far better than `after` within two epochs.
CLEAR = ["--epochs", "2", "--hidden-units", "8", "--confirm-seeds", "0", "--quiet"]


def test_until_settled_the_first_batch_is_the_fewest_blocks_that_can_settle():
    settled = StudyConfig(verbose=False)
    assert settled.until == "settled"  # the default
    assert batch_room(settled, capacity=64, search_trials=0) == 24  # 8 blocks of 3
    assert batch_room(settled, capacity=64, search_trials=24) == 64
    assert batch_room(settled, capacity=3, search_trials=0) == 3  # one model.fit at a time
    assert batch_room(StudyConfig(until="budget", verbose=False), 64, 0) == 64


@pytest.mark.trains
@pytest.mark.parametrize(
    "backend",
    [
        ["--backend", "optuna", "--target-trials", "60"],  # a shared study's rule
        ["--backend", "keras-tuner", "--tuner", "random", "--n-trials", "60"],
    ],
    ids=["optuna-target", "keras-tuner-random"],
)
def test_a_study_until_settled_stops_at_its_first_look_when_the_answer_is_known(
    tmp_path, cli, backend
):
    empty_mlflow_store_at(tmp_path / "mlruns" / "mlflow.db")  # the default store, made
    result = cli("study", *CLEAR, *backend, "--study-name", "clear", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    client, runs = trial_runs(f"sqlite:///{tmp_path}/mlruns/mlflow.db", "clear")
    assert len(runs) == 24  # 8 blocks, not the 20 the cap allows
    study_run = client.search_runs([runs[0].info.experiment_id], "tags.`bnsearch.kind` = 'study'")[
        0
    ]
    assert study_run.data.tags["bnsearch.verdict"] == "before"
    assert study_run.data.tags["bnsearch.verdict_rule"] == "settled"
    assert "settled after 8 blocks" in study_run.data.tags["bnsearch.verdict_text"]
    assert study_run.data.metrics["verdict.cs_high"] < -0.01

    again = cli("study", *CLEAR, *backend, "--study-name", "clear", cwd=tmp_path)
    assert again.returncode == 0
    assert len(trial_runs(f"sqlite:///{tmp_path}/mlruns/mlflow.db", "clear")[1]) == 24


@pytest.mark.trains
def test_a_settled_study_says_so_and_until_budget_adds_its_trials_anyway(tmp_path, cli):
    flags = [*CLEAR, "--study-name", "clear", "--n-trials", "30"]
    empty_mlflow_store_at(tmp_path / "mlruns" / "mlflow.db")  # the default store, made
    assert cli("study", *flags, cwd=tmp_path).returncode == 0
    storage = f"sqlite:///{tmp_path}/mlruns/optuna.db"
    assert len(optuna.load_study(study_name="clear", storage=storage).trials) == 24
    again = cli("study", *[f for f in flags if f != "--quiet"], cwd=tmp_path)
    assert "is settled (24 search trials); nothing to do" in again.stdout
    budget = cli("study", *flags, "--until", "budget", "--n-trials", "6", cwd=tmp_path)
    assert budget.returncode == 0
    assert len(optuna.load_study(study_name="clear", storage=storage).trials) == 30
