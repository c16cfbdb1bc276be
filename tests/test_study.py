from __future__ import annotations

import io

import optuna
import pytest
from mlflow.tracking import MlflowClient

from bnsearch.config import StudyConfig
from bnsearch.engines import resolve
from bnsearch.errors import ConfigError, StudyFailedError
from bnsearch.networks import NetworkSettings
from bnsearch.study import run_study
from bnsearch.trial import SearchSpace, TrialState, keys
from tests.conftest import stores_in, tiny_config, trial_runs, write_tiny_csv
from tests.support.standin import standin_study

EPOCHS = 2


def _config(tiny_csv, stores, **changes) -> StudyConfig:
    return tiny_config(tiny_csv, stores, "tiny", **{"verbose": True, **changes})


def _trial_runs(tracking_uri: str):
    return trial_runs(tracking_uri, "tiny")


@pytest.fixture(scope="module")
def short_study(tmp_path_factory: pytest.TempPathFactory):
    """One short population-engine study, read by the two tests below: two paired blocks of
    3 placements, then 2 confirmation seeds each (12 trials); its stores, outcome and output."""
    folder = tmp_path_factory.mktemp("short")
    stores = stores_in(folder)
    out = io.StringIO()
    config = _config(
        write_tiny_csv(folder), stores, n_trials=6, confirm_seeds=2, engine="population"
    )
    return stores, run_study(config, stream=out), out.getvalue()


@pytest.mark.trains
def test_short_study_logs_one_child_run_per_trial(short_study):
    stores, outcome, text = short_study
    client, runs = _trial_runs(stores["tracking_uri"])
    assert len(runs) == 12  # two paired blocks of 3 placements, then 2 confirmation seeds each
    for run in runs:
        assert run.data.tags["mlflow.parentRunId"] == outcome.parent_run_id
        assert set(run.data.params) >= {
            "placement", "momentum", "epsilon", "use_bias", "dropout", "learning_rate", "seed",
        }  # fmt: skip
        history = client.get_metric_history(run.info.run_id, "val_loss")
        assert [m.step for m in history] == list(range(EPOCHS))
        for metric in ("loss", "accuracy", "val_accuracy"):
            assert len(client.get_metric_history(run.info.run_id, metric)) == EPOCHS
        assert run.info.status == "FINISHED"
    # Each Optuna trial knows its MLflow run and each run its Optuna trial.
    study = optuna.load_study(study_name="tiny", storage=stores["storage"])
    by_run = {run.info.run_id: run for run in runs}
    for trial in study.trials:
        run = by_run[trial.user_attrs["mlflow_run_id"]]
        assert run.data.tags["bnsearch.trial_number"] == str(trial.number)
    parent = client.get_run(outcome.parent_run_id)
    assert parent.info.status == "FINISHED"
    assert parent.inputs.dataset_inputs, "the dataset is logged with mlflow.log_input"
    # The confirmation round trains its 6 trials (3 placements, 2 seeds) as one batch.
    assert "[6/6] confirm" in text and "placement" in text and "bnsearch ui" in text
    assert "Verdict: " in text and "before - after" in text
    assert parent.data.tags["bnsearch.verdict"] == outcome.verdict.outcome
    artifacts = {a.path for a in client.list_artifacts(outcome.parent_run_id)}
    assert {"report.md", "report.html", "distribution.png"} <= artifacts


@pytest.mark.trains
def test_trials_come_in_paired_blocks_differing_only_in_placement(short_study):
    stores, outcome, _ = short_study
    search = [r for r in outcome.new_results if r.spec.phase == "search"]
    blocks: dict[int, list] = {}
    for result in search:
        blocks.setdefault(result.spec.block, []).append(result)
    assert len(blocks) == 2
    for members in blocks.values():
        assert sorted(r.config.placement for r in members) == ["after", "before", "none"]
        assert len({r.spec.seed for r in members}) == 1
        others = [
            {k: v for k, v in r.config.as_params().items() if k != "placement"} for r in members
        ]
        assert all(o == others[0] for o in others)
    confirm = [r for r in outcome.new_results if r.spec.phase == "confirm"]
    assert len(confirm) == 6 and len({r.spec.seed for r in confirm}) == 2
    assert {c.placement for c in outcome.verdict.confirmations} == {"none", "before", "after"}
    _, runs = _trial_runs(stores["tracking_uri"])
    assert {
        r.data.tags.get("bnsearch.block") for r in runs if r.data.tags["bnsearch.phase"] == "search"
    } == {str(b) for b in blocks}


@pytest.mark.trains
def test_running_again_resumes_the_same_study_and_adds_runs(tiny_csv, stores):
    run_study(_config(tiny_csv, stores, n_trials=2, verbose=False))
    outcome = run_study(_config(tiny_csv, stores, n_trials=2, verbose=False))
    study = optuna.load_study(study_name="tiny", storage=stores["storage"])
    assert len(study.trials) == 6  # each run adds one paired block of 3 placements
    assert len(outcome.all_results) == 6
    _, runs = _trial_runs(stores["tracking_uri"])
    assert len(runs) == 6
    assert sorted(int(r.data.tags["bnsearch.trial_number"]) for r in runs) == list(range(6))


@pytest.mark.trains
def test_diverging_trial_is_recorded_as_failed_and_the_study_goes_on(tiny_csv, stores):
    study = optuna.create_study(study_name="tiny", storage=stores["storage"])
    study.enqueue_trial({"learning_rate": 1e38, "placement": "none"}, skip_if_exists=False)
    outcome = run_study(_config(tiny_csv, stores, n_trials=6, verbose=False))
    states = [r.state for r in outcome.new_results]
    # The first block shares the diverging learning rate; the second block trains normally.
    assert states[:3] == [TrialState.FAILED] * 3
    assert "loss became" in outcome.new_results[0].fail_reason
    assert states[3:] == [TrialState.COMPLETE] * 3
    trials = optuna.load_study(study_name="tiny", storage=stores["storage"]).trials
    assert trials[0].state is optuna.trial.TrialState.FAIL
    assert "loss became" in trials[0].user_attrs["fail_reason"]
    client, runs = _trial_runs(stores["tracking_uri"])
    failed = [r for r in runs if r.info.status == "FAILED"]
    assert len(failed) == 3 and "loss became" in failed[0].data.tags["bnsearch.fail_reason"]


@pytest.mark.trains
def test_a_study_whose_trials_all_fail_raises(tiny_csv, stores):
    space = SearchSpace.from_overrides({"learning_rate": 1e38, "placement": ["none"]})
    with pytest.raises(StudyFailedError, match="all 2 trials failed"):
        run_study(_config(tiny_csv, stores, n_trials=2, space=space, verbose=False))


@pytest.mark.trains
def test_changing_the_space_of_an_existing_study_is_refused(tiny_csv, stores):
    run_study(_config(tiny_csv, stores, n_trials=1, verbose=False))
    changed = SearchSpace.from_overrides({"dropout": [0.0, 0.1]})
    with pytest.raises(ConfigError, match="different space"):
        run_study(_config(tiny_csv, stores, n_trials=1, space=changed, verbose=False))
    allowed = _config(
        tiny_csv, stores, n_trials=1, space=changed, verbose=False, allow_changed_study=True
    )
    assert len(run_study(allowed).all_results) == 6


@pytest.mark.trains
def test_too_many_consecutive_failures_stop_the_study_with_the_reasons(tiny_csv, stores):
    space = SearchSpace.from_overrides({"learning_rate": 1e38, "placement": ["none"]})
    with pytest.raises(StudyFailedError, match="stopped after 3 consecutive failed trials"):
        # The Keras engine trains one trial per batch, so three batches are three trials.
        run_study(
            _config(tiny_csv, stores, n_trials=10, space=space, verbose=False, engine="keras")
        )
    study = optuna.load_study(study_name="tiny", storage=stores["storage"])
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.FAIL] * 3
    client, runs = _trial_runs(stores["tracking_uri"])
    assert sorted(r.info.status for r in runs) == ["FAILED"] * 3


@pytest.mark.slow
def test_tiny_cnn_study_on_digits_trains_on_the_population_engine_and_logs_a_verdict(stores):
    network = NetworkSettings(
        family="cnn", conv_filters=(4, 8), hidden_units=(16,), activation="relu", epochs=2,
        batch_size=64,
    )  # fmt: skip
    config = StudyConfig(
        study_name="tiny", data="sklearn:digits", n_trials=6, confirm_seeds=1,
        sampler="random", network=network, verbose=False,
        space=SearchSpace.from_overrides({"placement": ["before", "after"]}), **stores,
    )  # fmt: skip
    assert resolve(config).engine == "population"  # the cnn family trains on it by default
    outcome = run_study(config)
    assert len(outcome.new_results) == 8  # 3 paired blocks, then 1 confirmation seed each
    assert all(r.state is TrialState.COMPLETE for r in outcome.new_results)
    assert outcome.verdict.n_blocks == 3 and "3 blocks" in outcome.verdict.statement
    client, runs = _trial_runs(stores["tracking_uri"])
    assert len(runs) == 8
    assert all(len(client.get_metric_history(r.info.run_id, "val_loss")) == 2 for r in runs)
    parent = client.get_run(outcome.parent_run_id)
    assert parent.data.tags["bnsearch.verdict"] == outcome.verdict.outcome
    assert parent.data.params["network.family"] == "cnn"
    assert "report.md" in {a.path for a in client.list_artifacts(outcome.parent_run_id)}


@pytest.mark.trains
def test_searching_the_activation_gives_a_verdict_per_activation(tiny_csv, stores):
    space = SearchSpace.from_overrides({"activation": ["tanh", "relu"]})
    config = _config(
        tiny_csv, stores, n_trials=18, space=space, sampler="random", engine="population"
    )
    outcome = run_study(config)
    searched = {r.config.activation for r in outcome.new_results}
    assert searched == {"tanh", "relu"}
    for block in {r.spec.block for r in outcome.new_results}:  # a block shares its activation
        assert len({r.config.activation for r in outcome.new_results if r.spec.block == block}) == 1
    assert set(outcome.verdict.by_activation) == {"tanh", "relu"}
    blocks = sum(v.n_blocks for v in outcome.verdict.by_activation.values())
    assert blocks == outcome.verdict.n_blocks == 6
    client = MlflowClient(stores["tracking_uri"])
    parent = client.get_run(outcome.parent_run_id)
    for activation, verdict in outcome.verdict.by_activation.items():
        assert parent.data.tags[f"bnsearch.verdict.{activation}"] == verdict.outcome
    runs = client.search_runs([parent.info.experiment_id], "tags.`bnsearch.kind` = 'trial'")
    assert {r.data.params["activation"] for r in runs} == {"tanh", "relu"}


@pytest.mark.trains
def test_optuna_dashboard_sees_a_named_objective_the_verdict_and_short_trial_attributes(
    tiny_csv, stores
):
    from bnsearch.backends.optuna import stored_result

    config = tiny_config(tiny_csv, stores, "dashboard")
    outcome = run_study(config)
    study = optuna.load_study(study_name="dashboard", storage=stores["storage"])
    assert study.metric_names == ["final val_loss"]
    assert study.user_attrs["bnsearch.verdict"] == outcome.verdict.statement
    assert study.user_attrs["bnsearch.verdict_outcome"] == outcome.verdict.outcome
    for trial in study.trials:
        assert all(len(str(value)) < 200 for value in trial.user_attrs.values())
        assert stored_result(trial) is not None  # the full result, out of the trial page


@pytest.mark.server
def test_the_median_pruner_stops_trials_and_every_store_says_so(tiny_csv, tmp_path):
    """``--pruner median``: Optuna's pruned trials are the MLflow runs ended as pruned, each
    at the epoch it names."""
    flags = ("--epochs", "8", "--n-trials", "18", "--population", "3", "--pruner", "median")
    done, storage, tracking = standin_study(tmp_path, tiny_csv, 0, *flags)
    assert done.returncode == 0, done.stderr[-2000:]
    trials = optuna.load_study(study_name="standin", storage=storage).trials
    pruned = {t.number: t for t in trials if t.state == optuna.trial.TrialState.PRUNED}
    assert pruned, [len(t.intermediate_values) for t in trials]
    # The pruner waits for 5 completed trials (its n_startup_trials): none pruned before.
    assert min(pruned) >= 5
    _, runs = trial_runs(tracking, "standin")
    by_trial = {int(run.data.tags[keys.TRIAL_NUMBER]): run for run in runs}
    assert len(by_trial) == len(trials) == 18
    for number, run in by_trial.items():
        if number not in pruned:
            assert run.info.status == "FINISHED" and run.data.tags[keys.STATE] == "COMPLETE"
            continue
        last = max(pruned[number].intermediate_values)  # the epoch it was stopped after
        assert run.info.status == "KILLED" and run.data.tags[keys.STATE] == "PRUNED"
        assert run.data.tags[keys.FAIL_REASON] == f"pruned after epoch {last}"
        assert run.data.metrics["epochs_trained"] == last + 1 < 8
    table = [
        line.split()
        for line in done.stdout.splitlines()
        if line.startswith(("before", "after", "none "))
    ]
    assert sum(int(row[2]) for row in table) == len(pruned), done.stdout[-2000:]


@pytest.mark.server
def test_the_timeout_stops_starting_trials_and_says_so(tiny_csv, tmp_path):
    """``--timeout 1``: the first batch starts at once; it sleeps 4 epochs of 0.5 s, so once
    it ends the timeout has passed and no other batch starts, however fast the machine."""
    flags = ("--epochs", "4", "--n-trials", "30", "--population", "3", "--timeout", "1")
    done, storage, _ = standin_study(tmp_path, tiny_csv, 0.5, *flags)
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(optuna.load_study(study_name="standin", storage=storage).trials) == 3
    assert "bnsearch: the timeout (1 s) is reached: no new trials." in done.stdout


@pytest.mark.server
def test_a_seed_repeats_the_trials_and_quiet_changes_only_the_output(tiny_csv, tmp_path):
    """``--seed 7`` twice (once ``--quiet``) proposes the same trials; ``--seed 8`` others."""

    def study(name: str, *flags: str):
        (tmp_path / name).mkdir()
        done, storage, _ = standin_study(tmp_path / name, tiny_csv, 0, "--n-trials", "6", *flags)
        assert done.returncode == 0, done.stderr[-2000:]
        trials = optuna.load_study(study_name="standin", storage=storage).trials
        return done.stdout, [(t.params, t.user_attrs["seed"]) for t in trials]

    quiet, first = study("quiet", "--seed", "7", "--quiet")
    shown, again = study("shown", "--seed", "7")
    _, other = study("other", "--seed", "8")
    assert quiet == "" and "Verdict:" in shown
    assert len(first) == 6 and again == first
    assert [params for params, _ in other] != [params for params, _ in first]


@pytest.mark.server
def test_the_grid_sampler_and_the_hyperband_pruner_as_typed(tiny_csv, tmp_path):
    """``--sampler grid`` proposes only the space's grid points (the default space: three a
    range), without Optuna's out-of-range warning; ``--pruner hyperband`` prunes trials."""
    (tmp_path / "grid").mkdir()
    done, storage, _ = standin_study(tmp_path / "grid", tiny_csv, 0, "--sampler", "grid")
    assert done.returncode == 0 and "out of range" not in done.stderr, done.stderr[-2000:]
    grid = SearchSpace().grid()
    trials = optuna.load_study(study_name="standin", storage=storage).trials
    assert trials and all(value in grid[k] for t in trials for k, value in t.params.items())
    (tmp_path / "hyperband").mkdir()
    flags = ("--pruner", "hyperband", "--epochs", "8", "--n-trials", "18", "--population", "3")
    done, storage, _ = standin_study(tmp_path / "hyperband", tiny_csv, 0, *flags)
    assert done.returncode == 0, done.stderr[-2000:]
    states = [t.state for t in optuna.load_study(study_name="standin", storage=storage).trials]
    assert len(states) == 18 and optuna.trial.TrialState.PRUNED in states


@pytest.mark.server
def test_a_changed_network_or_data_is_refused_in_one_line_unless_allowed(tiny_csv, tmp_path):
    """An existing study run again on another network or other data: one line naming what
    changed and the flag, nothing added; with ``--allow-changed-study`` the trials are added."""

    def study(data, *flags: str):
        done, storage, _ = standin_study(tmp_path, data, 0, "--n-trials", "3", *flags)
        return done, len(optuna.load_study(study_name="standin", storage=storage).trials)

    done, stored = study(tiny_csv, "--epochs", "2")
    assert done.returncode == 0 and stored == 3, done.stderr[-2000:]
    fewer_rows = tmp_path / "fewer.csv"
    fewer_rows.write_text("".join(tiny_csv.read_text().splitlines(keepends=True)[:-10]))
    for data, flags, what in (
        (tiny_csv, ("--epochs", "3"), "network"),
        (fewer_rows, ("--epochs", "2"), "data fingerprint"),
    ):
        done, stored = study(data, *flags)
        assert done.returncode == 2 and stored == 3, (what, done.stderr[-2000:])
        assert done.stderr.count("\n") == 1, done.stderr
        assert f"exists with a different {what};" in done.stderr
        assert "--allow-changed-study" in done.stderr
    done, stored = study(fewer_rows, "--epochs", "3", "--allow-changed-study")
    assert done.returncode == 0 and stored == 6, done.stderr[-2000:]
