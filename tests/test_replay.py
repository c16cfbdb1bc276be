"""Replaying a logged trial alone, from its stored configuration and seed."""

from __future__ import annotations

import io

import pytest
from mlflow.tracking import MlflowClient

from bnsearch.errors import ConfigError
from bnsearch.replay import REPLAY_TOLERANCE, replay_trial
from bnsearch.study import run_study
from bnsearch.trial import TrialState
from tests.conftest import stores_in, tiny_config, write_tiny_csv


def _study(folder, engine: str, n_trials: int = 6):
    """A tiny study of ``n_trials`` trials (six: two blocks) on ``engine``; its config and
    stores."""
    csv, stores = write_tiny_csv(folder), stores_in(folder)
    config = tiny_config(csv, stores, f"replay-{engine}", engine=engine, n_trials=n_trials)
    run_study(config)  # population: the six trials trained together in one population
    return config, stores


#: The trial each engine's study replays, not its first: trial 4 of the population study's
#: six; trial 2 of a Keras study of three (one model.fit a trial, so three trials cost the
#: Keras study half of six, and trial 2 is replayed from its seed no differently than 4).
REPLAYED = {"population": 4, "keras": 2}


@pytest.fixture(scope="module")
def population_study(tmp_path_factory):
    return _study(tmp_path_factory.mktemp("replay-population"), "population")


@pytest.mark.trains
@pytest.mark.parametrize("engine", ["population", "keras"])
def test_a_trial_replayed_alone_on_its_engine_reproduces_its_logged_metrics(
    tmp_path, population_study, engine
):
    number = REPLAYED[engine]
    if engine == "population":
        config, stores = population_study
    else:
        config, stores = _study(tmp_path, engine, n_trials=number + 1)
    out = io.StringIO()

    replay = replay_trial(config, number, stream=out)

    assert replay.engine == engine == replay.original.engine
    assert replay.replayed.spec == replay.original.spec
    assert replay.reproduced and replay.rel_difference <= REPLAY_TOLERANCE
    assert "reproduced within 0.0001 relative" in out.getvalue()
    client = MlflowClient(stores["tracking_uri"])
    run = client.get_run(replay.run_id)
    assert run.data.tags["bnsearch.kind"] == "replay"
    assert run.data.tags["bnsearch.replays_trial"] == str(number)
    original = client.get_run(run.data.tags["bnsearch.replays_run"])
    assert original.data.tags["bnsearch.trial_number"] == str(number)
    steps = client.get_metric_history(replay.run_id, "val_loss")
    assert [m.step for m in steps] == [0, 1]


@pytest.mark.trains
def test_replaying_on_the_other_engine_says_the_two_are_not_comparable(population_study):
    config, _ = population_study
    out = io.StringIO()
    replay = replay_trial(config, 1, engine="keras", stream=out)
    assert not replay.same_engine and not replay.reproduced
    assert "not comparable epoch by epoch" in out.getvalue()


@pytest.mark.trains
def test_a_trial_the_study_does_not_have_is_a_clear_error(population_study):
    config, _ = population_study
    with pytest.raises(ConfigError, match=r"no finished trial 99 \(trials with a result: 0..5\)"):
        replay_trial(config, 99)


@pytest.mark.trains
def test_a_regression_trial_replays_with_its_mean_absolute_error(tmp_path):
    from bnsearch.trial import FloatRange, SearchSpace
    from tests.test_model_rewrite import _regression_csv

    stores = stores_in(tmp_path)
    # A small learning rate: mean squared error on a net of 8x8 at up to 0.3 runs away,
    # and a run-away trial's rounding is no test of the replay.
    space = SearchSpace(learning_rate=FloatRange(0.003, 0.01))
    config = tiny_config(
        _regression_csv(tmp_path), stores, "replay-regression", target="target",
        task="regression", n_trials=6, standardize=True, space=space,
    )  # fmt: skip
    outcome = run_study(config)
    trained = [r for r in outcome.all_results if r.state is TrialState.COMPLETE]
    assert max(r.final("val_loss") for r in trained) < 10, "the study ran away"
    out = io.StringIO()
    replay = replay_trial(config, trained[0].spec.number, stream=out)
    assert replay.reproduced and replay.rel_difference <= REPLAY_TOLERANCE
    assert " val_mae " in out.getvalue() and " val_accuracy " not in out.getvalue()
    client = MlflowClient(stores["tracking_uri"])
    assert [m.step for m in client.get_metric_history(replay.run_id, "val_mae")] == [0, 1]


@pytest.fixture(scope="module")
def raw_breast_cancer_study(tmp_path_factory):
    """Issue #25's case: breast_cancer on raw features (scales spanning 4 orders of
    magnitude), 2 epochs, nine trials trained together in a population of 16."""
    from bnsearch.networks import NetworkSettings

    stores = stores_in(tmp_path_factory.mktemp("replay-breast-cancer"))
    config = tiny_config(
        "unused", stores, "replay-breast-cancer", data="sklearn:breast_cancer", target=None,
        n_trials=9, network=NetworkSettings(epochs=2),
    )  # fmt: skip
    return config, run_study(config)


@pytest.mark.trains
def test_a_population_trial_is_replayed_in_its_recorded_batch_and_reproduces_exactly(
    raw_breast_cancer_study,
):
    config, outcome = raw_breast_cancer_study
    numbers = tuple(r.spec.number for r in outcome.all_results)
    for result in outcome.all_results:
        assert result.population == 16 and result.batch == numbers
    # Trials 0, 2 and 6 of this study replayed alone differed by 26 %, 1.7 % and 0.8 %
    # (measured 2026-12-04); in their batch every one of the nine matched to the bit.
    for number in (0, 2, 6):
        out = io.StringIO()
        replay = replay_trial(config, number, stream=out)
        assert replay.trained_with == 9 and replay.replayed.population == 16
        assert replay.reproduced and replay.abs_difference == 0.0
        assert "in its batch as trained (9 trials in a population of 16)" in out.getvalue()


@pytest.mark.trains
def test_a_population_trial_replayed_alone_says_why_it_may_differ(raw_breast_cancer_study):
    config, _ = raw_breast_cancer_study
    out = io.StringIO()
    replay = replay_trial(config, 0, stream=out, alone=True)
    assert replay.trained_with == 1 and replay.replayed.population == 1
    assert "alone on the population engine" in out.getvalue()
    # Rounding decides which: it differed here by 26 % (2026-12-04); either way it says so.
    said = out.getvalue()
    assert replay.reproduced == ("reproduced within 0.0001 relative" in said)
    if not replay.reproduced:
        assert "trained among 9 members" in said
        assert "a replay without --alone trains its recorded batch" in said
