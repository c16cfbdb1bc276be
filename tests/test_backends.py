"""Behaviour both backends share, run against each: one parametrized suite, not two copies."""

from __future__ import annotations

import pytest

from bnsearch.config import StudyConfig
from bnsearch.errors import StudyFailedError
from bnsearch.study import run_study
from bnsearch.trial import SearchSpace, TrialState
from tests.conftest import tiny_config, trial_runs

BACKENDS = ["optuna", "keras-tuner"]
EPOCHS = 2


def _config(backend, tiny_csv, stores, **changes) -> StudyConfig:
    return tiny_config(tiny_csv, stores, "shared", backend=backend, **changes)


def _trial_runs(uri: str):
    return trial_runs(uri, "shared")


@pytest.mark.trains
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


@pytest.mark.trains
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


@pytest.mark.trains
def test_a_trial_failed_by_another_process_while_training_is_retried_not_crashed(tiny_csv, stores):
    import optuna

    from bnsearch.backends._loop import TAKEN_OVER
    from bnsearch.backends.optuna import OptunaBackend, blocks_to_complete
    from bnsearch.engines import KerasEngine
    from bnsearch.study import load_study_dataset
    from bnsearch.tracking import MlflowTracker

    class OtherProcessFailsOneTrial(KerasEngine):
        """Trains for real; first, as another process's stale-trial cleanup would, fails
        the first trial of the batch in the shared Optuna storage."""

        victim: int | None = None

        def train(self, specs, dataset, network, on_epoch=None, keep_models=False):
            if self.victim is None:
                self.victim = specs[0].number
                other = optuna.load_study(study_name="shared", storage=stores["storage"])
                other.tell(self.victim, state=optuna.trial.TrialState.FAIL)
            return super().train(specs, dataset, network, on_epoch, keep_models)

    config = _config("optuna", tiny_csv, stores, engine="keras", n_trials=3)
    tracker = MlflowTracker(config.resolved_tracking_uri, "shared")
    tracker.connect()
    engine = OtherProcessFailsOneTrial()
    backend = OptunaBackend(config, load_study_dataset(config), engine, tracker)
    backend.open()
    tracker.start_study_run("first", params={}, tags={})
    said = []
    results = backend.run(None, said.append)
    tracker.end_study_run()
    # The lost trial is retried at once in its block (same parameters and seed), so the run
    # still delivers its three trials and the block ends whole.
    numbers = [r.spec.number for r in results]
    assert len(results) == 3 and engine.victim not in numbers
    assert len({r.spec.block for r in results}) == 1 and len({r.spec.seed for r in results}) == 1
    assert blocks_to_complete(backend.study.trials, config.space.placement) == []
    client, runs = _trial_runs(stores["tracking_uri"])
    by_number = {r.data.tags["bnsearch.trial_number"]: r for r in runs}
    victim_run = by_number[str(engine.victim)]
    assert victim_run.info.status == "FAILED"
    assert victim_run.data.tags["bnsearch.fail_reason"].startswith("taken over")
    retried = [r for r in runs if r.data.tags.get("bnsearch.retries_trial") == str(engine.victim)]
    assert len(retried) == 1 and retried[0].info.status == "FINISHED"
    assert [line for line in said if "taken over" in line] == [
        f"bnsearch: trial {engine.victim} was {TAKEN_OVER}."
    ]
