"""Replaying a logged trial alone, from its stored configuration and seed."""

from __future__ import annotations

import io

import pytest
from mlflow.tracking import MlflowClient

from bnsearch.errors import ConfigError
from bnsearch.replay import REPLAY_TOLERANCE, replay_trial
from bnsearch.study import run_study
from tests.conftest import tiny_config


@pytest.mark.parametrize("engine", ["population", "keras"])
def test_a_trial_replayed_alone_on_its_engine_reproduces_its_logged_metrics(
    tiny_csv, stores, engine
):
    config = tiny_config(tiny_csv, stores, f"replay-{engine}", engine=engine, n_trials=6)
    run_study(config)  # population: six trials trained together in one population
    out = io.StringIO()

    replay = replay_trial(config, 4, stream=out)

    assert replay.engine == engine == replay.original.engine
    assert replay.replayed.spec == replay.original.spec
    assert replay.reproduced and replay.rel_difference <= REPLAY_TOLERANCE
    assert "reproduced within 0.0001 relative" in out.getvalue()
    client = MlflowClient(stores["tracking_uri"])
    run = client.get_run(replay.run_id)
    assert run.data.tags["bnsearch.kind"] == "replay"
    assert run.data.tags["bnsearch.replays_trial"] == "4"
    original = client.get_run(run.data.tags["bnsearch.replays_run"])
    assert original.data.tags["bnsearch.trial_number"] == "4"
    steps = client.get_metric_history(replay.run_id, "val_loss")
    assert [m.step for m in steps] == [0, 1]


def test_replaying_on_the_other_engine_says_the_two_are_not_comparable(tiny_csv, stores):
    config = tiny_config(tiny_csv, stores, "replay-cross", n_trials=3)
    run_study(config)
    out = io.StringIO()
    replay = replay_trial(config, 1, engine="keras", stream=out)
    assert not replay.same_engine and not replay.reproduced
    assert "not comparable epoch by epoch" in out.getvalue()


def test_a_trial_the_study_does_not_have_is_a_clear_error(tiny_csv, stores):
    config = tiny_config(tiny_csv, stores, "replay-missing", n_trials=3)
    run_study(config)
    with pytest.raises(ConfigError, match=r"no finished trial 99 \(trials with a result: 0..2\)"):
        replay_trial(config, 99)
