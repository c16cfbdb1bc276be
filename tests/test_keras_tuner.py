from __future__ import annotations

import io
from dataclasses import replace

import pytest

from bnsearch.backends.keras_tuner import project_dir, results_from_project
from bnsearch.config import StudyConfig
from bnsearch.errors import ConfigError
from bnsearch.networks import NetworkSettings
from bnsearch.study import run_study
from bnsearch.trial import ACTIVATIONS, SearchSpace
from tests.conftest import stores_in, tiny_config, trial_runs, write_tiny_csv


def _config(tiny_csv, stores, **changes) -> StudyConfig:
    settings = {"n_trials": 3, "backend": "keras-tuner", "confirm_seeds": 0, **changes}
    return tiny_config(tiny_csv, stores, "kt", **settings)


def _runs(uri: str):
    return trial_runs(uri, "kt")


def test_tensorboard_hparams_plugin_imports():
    # Keras Tuner imports it inside every trial; without it every trial fails.
    from tensorboard.plugins.hparams import api

    assert hasattr(api, "KerasCallback")


def test_keras_tuners_own_search_trains_on_the_keras_engine_and_paired_tuners_on_any():
    from bnsearch.engines import resolve

    for tuner, engine in [
        ("hyperband", "keras"),
        ("grid", "keras"),
        ("random", "population"),
        ("bayesian", "population"),
    ]:
        assert resolve(StudyConfig(backend="keras-tuner", tuner=tuner)).engine == engine


def _by_block(results) -> dict[int, list]:
    blocks: dict[int, list] = {}
    for result in results:
        blocks.setdefault(result.spec.block, []).append(result)
    return blocks


@pytest.fixture(scope="module")
def six_trials(tmp_path_factory):
    """One 6-trial study per paired tuner, prepared then run, shared by the tests that read it:
    tuner -> (config, stores, what prepare_study said, outcome)."""
    import io

    from bnsearch.study import prepare_study

    made = {}

    def study(tuner: str):
        if tuner not in made:
            folder = tmp_path_factory.mktemp(f"kt-{tuner}")
            stores = stores_in(folder)
            config = _config(write_tiny_csv(folder), stores, tuner=tuner, n_trials=6)
            said = io.StringIO()
            prepare_study(config, said)
            made[tuner] = (config, stores, said.getvalue(), run_study(config))
        return made[tuner]

    return study


@pytest.mark.trains
@pytest.mark.parametrize("tuner", ["random", "bayesian"])
def test_each_oracle_proposal_becomes_a_paired_block_the_oracle_counts(six_trials, tuner):
    import json

    config, stores, _, outcome = six_trials(tuner)
    blocks = _by_block(outcome.new_results)
    assert len(blocks) == 2
    for members in blocks.values():
        assert sorted(r.config.placement for r in members) == ["after", "before", "none"]
        assert len({r.spec.seed for r in members}) == 1
        others = {repr({**r.config.as_params(), "placement": ""}) for r in members}
        assert len(others) == 1  # the siblings differ in placement only
    # Every trained trial is an oracle trial of its own, scored by its final val_loss.
    trials = [
        json.loads(path.read_text()) for path in project_dir(config).glob("trial_*/trial.json")
    ]
    assert len(trials) == 6 and {t["status"] for t in trials} == {"COMPLETED"}
    final = {r.spec.number: r.final("val_loss") for r in outcome.new_results}
    for trial in trials:
        assert trial["score"] == pytest.approx(final[int(trial["trial_id"])])
    _, runs = _runs(stores["tracking_uri"])
    assert len(runs) == 6 and all(r.info.status == "FINISHED" for r in runs)


@pytest.mark.trains
def test_a_keras_tuner_study_states_the_paired_verdict_with_a_confirmation_round(tiny_csv, stores):
    from mlflow.tracking import MlflowClient

    outcome = run_study(_config(tiny_csv, stores, n_trials=9, confirm_seeds=2))
    assert outcome.verdict.primary is not None and outcome.verdict.n_blocks == 3
    assert outcome.verdict.primary.ci_low <= outcome.verdict.primary.ci_high
    confirm = [r for r in outcome.new_results if r.spec.phase == "confirm"]
    assert len(confirm) == 6 and len({r.spec.seed for r in confirm}) == 2
    client = MlflowClient(stores["tracking_uri"])
    experiment = client.get_experiment_by_name("kt").experiment_id
    (study_run,) = client.search_runs([experiment], "tags.`bnsearch.kind` = 'study'")
    assert study_run.data.tags["bnsearch.verdict"] == outcome.verdict.outcome
    assert "verdict.ci_low" in study_run.data.metrics


@pytest.mark.trains
def test_a_batch_trains_several_blocks_at_once_on_the_population_engine(tiny_csv, stores):
    from bnsearch.backends import make_backend
    from bnsearch.engines import make_engine
    from bnsearch.study import load_study_dataset
    from bnsearch.tracking import MlflowTracker

    config = _config(tiny_csv, stores, n_trials=12, population=6)
    dataset = load_study_dataset(config)
    engine = make_engine(config.engine, config.population)
    batches = []
    train = engine.train
    engine.train = lambda specs, *args, **kw: (
        batches.append(len(specs)) or train(specs, *args, **kw)
    )
    tracker = MlflowTracker(config.resolved_tracking_uri, "kt")
    backend = make_backend(config, dataset, engine, tracker)
    backend.open()
    results = backend.run(None, print)
    assert batches == [6, 6] and len(results) == 12
    assert backend.unpaired_reason is None


@pytest.mark.slow
def test_hyperband_logs_its_epoch_bookkeeping_and_links_continued_trials(tiny_csv, stores):
    config = _config(tiny_csv, stores, tuner="hyperband", network=NetworkSettings(
        epochs=3, hidden_units=(8, 8)))  # fmt: skip
    outcome = run_study(config)
    client, runs = _runs(stores["tracking_uri"])
    assert len(runs) == len(outcome.new_results) > 2
    for run in runs:
        for key in ("tuner/epochs", "tuner/initial_epoch", "tuner/bracket", "tuner/round"):
            assert key in run.data.params
    continued = [r for r in runs if "bnsearch.resumes_trial" in r.data.tags]
    assert continued, "Hyperband continues some trials in its later rounds"
    run_ids = {r.info.run_id for r in runs}
    for run in continued:
        assert run.data.tags["bnsearch.resumes_run"] in run_ids
        # Steps are the real epochs: a continued trial starts at its initial epoch.
        initial = int(run.data.params["tuner/initial_epoch"])
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "val_loss")]
        assert steps and steps[0] == initial


@pytest.mark.slow
def test_keras_tuners_own_grid_search_runs_whole_in_a_child_process(tiny_csv, stores):
    # TensorFlow keeps memory per model built even after clear_session(): Keras Tuner's own
    # search runs in a child process. Its grid oracle proposes nothing once reloaded in a
    # second process, so a grid is not split into groups of trials.
    import os

    fixed = {"momentum": 0.99, "epsilon": 0.001, "dropout": 0.5, "learning_rate": 0.1}
    config = _config(tiny_csv, stores, tuner="grid", space=SearchSpace.from_overrides(fixed))
    outcome = run_study(config)
    _, runs = _runs(stores["tracking_uri"])
    assert len(runs) == 3 == len(outcome.new_results)
    assert sorted(r.data.tags["keras_tuner.trial_id"] for r in runs) == ["0", "1", "2"]
    pids = {r.data.tags["bnsearch.pid"] for r in runs}
    assert len(pids) == 1 and str(os.getpid()) not in pids
    assert "not paired" in outcome.verdict.statement


@pytest.mark.slow
def test_keras_tuners_own_search_starts_no_trial_after_the_timeout(tiny_csv, stores):
    # A grid of 42 trainings (3 placements, with and without bias, 7 activations) cannot end
    # within 1 s: the search stops early, after its first trial at least.
    fixed = {"momentum": 0.99, "epsilon": 0.001, "dropout": 0.5, "learning_rate": 0.1}
    space = SearchSpace.from_overrides({**fixed, "activation": list(ACTIVATIONS)})
    assert len(space.placement) * len(space.use_bias) * len(space.activation) == 42
    config = _config(tiny_csv, stores, tuner="grid", space=space, n_trials=42, timeout=1)
    out = io.StringIO()
    outcome = run_study(replace(config, verbose=True), stream=out)
    _, runs = _runs(stores["tracking_uri"])
    assert 1 <= len(runs) == len(outcome.new_results) < 42
    assert "bnsearch: the timeout (1 s) is reached: no new trials." in out.getvalue()
    assert {r.info.status for r in runs} == {"FINISHED"}  # none cut short


@pytest.mark.trains
def test_running_again_continues_the_same_project_with_new_blocks(tiny_csv, stores):
    run_study(_config(tiny_csv, stores))
    outcome = run_study(_config(tiny_csv, stores))
    assert len(outcome.new_results) == 3 and len(outcome.all_results) == 6
    assert sorted(_by_block(outcome.all_results)) == [0, 3]
    folder = project_dir(_config(tiny_csv, stores))
    assert len(results_from_project(folder)) == 6
    _, runs = _runs(stores["tracking_uri"])
    assert sorted(int(r.data.tags["keras_tuner.trial_id"]) for r in runs) == list(range(6))


@pytest.mark.trains
def test_target_trials_fills_the_project_up_to_its_target_then_it_is_up_to_date(tiny_csv, stores):
    import io

    first = run_study(_config(tiny_csv, stores, target_trials=6, n_trials=None))
    assert len(first.new_results) == 6
    out = io.StringIO()
    again = run_study(_config(tiny_csv, stores, target_trials=6, verbose=True), stream=out)
    assert again.new_results == [] and "is up to date (6 of 6 search trials)" in out.getvalue()


@pytest.mark.trains
def test_prepare_and_report_read_a_keras_tuner_project_as_they_read_an_optuna_study(
    six_trials, tmp_path
):
    import io

    from mlflow.tracking import MlflowClient

    from bnsearch.study import rebuild_report

    config, stores, said, outcome = six_trials("random")  # prepared, then run
    assert config.tuner == "random"
    assert f"is ready in {project_dir(config)} (0 trials)" in said
    verdict = rebuild_report(config, tmp_path / "report", io.StringIO())
    assert verdict.statement == outcome.verdict.statement and verdict.n_blocks == 2
    assert (tmp_path / "report" / "report.html").exists()
    client = MlflowClient(stores["tracking_uri"])
    experiment = client.get_experiment_by_name("kt").experiment_id
    (report_run,) = client.search_runs([experiment], "tags.`bnsearch.kind` = 'report'")
    assert report_run.data.tags["keras_tuner.study"] == "kt"


@pytest.mark.trains
def test_a_changed_space_is_refused(tiny_csv, stores):
    run_study(_config(tiny_csv, stores, n_trials=1))
    changed = SearchSpace.from_overrides({"dropout": [0.0, 0.1]})
    with pytest.raises(ConfigError, match="different space"):
        run_study(_config(tiny_csv, stores, n_trials=1, space=changed))


def test_grid_needs_fixed_numeric_parameters(tiny_csv, stores):
    with pytest.raises(ConfigError, match="grid"):
        run_study(_config(tiny_csv, stores, tuner="grid"))


@pytest.mark.slow
def test_a_torn_last_line_of_the_results_file_is_dropped_and_the_study_goes_on(tiny_csv, stores):
    import io

    run_study(_config(tiny_csv, stores, n_trials=1))
    folder = project_dir(_config(tiny_csv, stores))
    results_file = folder / "bnsearch_results.jsonl"
    whole = results_file.read_text()
    last = whole.splitlines(keepends=True)[-1]
    results_file.write_text(whole + last[: len(last) // 2])  # a kill mid-append
    out = io.StringIO()
    outcome = run_study(_config(tiny_csv, stores, n_trials=1, verbose=True), stream=out)
    assert "dropped the torn last line" in out.getvalue()
    assert len(outcome.all_results) == 6 and len(outcome.new_results) == 3
    lines = results_file.read_text().splitlines()
    assert len(lines) == 6 and all(line.startswith("{") and line.endswith("}") for line in lines)


@pytest.mark.server
@pytest.mark.slow
def test_runs_left_running_by_a_killed_invocation_and_its_child_are_ended_by_the_next_run(
    tiny_csv, tmp_path, cli
):
    import os
    import signal
    import subprocess
    import sys
    import time

    from mlflow.tracking import MlflowClient

    args = [
        "study", "--backend", "keras-tuner", "--data", str(tiny_csv), "--target", "label",
        "--epochs", "30", "--hidden-units", "8", "--study-name", "kt", "--confirm-seeds", "0",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    doomed = subprocess.Popen(
        [sys.executable, "-m", "bnsearch", *args, "--n-trials", "6"], cwd=tmp_path, env=env,
        start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    db = tmp_path / "mlruns" / "mlflow.db"

    def running_trial_runs() -> bool:
        # Read-only SQL while the doomed study runs: an MLflow client opened on the store
        # sets it up as it opens, beside the study's Keras Tuner child doing the same, and
        # the two collide ("table ... already exists", seen on a busy machine).
        import contextlib
        import sqlite3

        query = (
            "select 1 from runs r join experiments e on e.experiment_id = r.experiment_id "
            "join tags t on t.run_uuid = r.run_uuid where e.name = 'kt' and "
            "r.status = 'RUNNING' and t.key = 'bnsearch.kind' and t.value = 'trial'"
        )
        try:
            with contextlib.closing(sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True)) as read:
                return bool(read.execute(query).fetchall())
        except sqlite3.Error:  # no file yet, no table yet, or locked a moment
            return False

    deadline, seen = time.monotonic() + 300, False
    while not seen and time.monotonic() < deadline and doomed.poll() is None:
        time.sleep(0.1)  # the doomed study trains on until seen: look often
        seen = bool(running_trial_runs())
    assert seen, doomed.stdout.read() if doomed.poll() is not None else ""
    # At once, as seen: a second look first would give the run time to finish.
    os.killpg(doomed.pid, signal.SIGKILL)  # the invocation and its Keras Tuner child
    doomed.wait(timeout=60)

    rerun = cli(*args, "--n-trials", "1", cwd=tmp_path)  # the next run: in this process
    client = MlflowClient(f"sqlite:///{db}")  # every other process has ended

    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "abandoned runs ended" in rerun.stdout
    experiment = client.get_experiment_by_name("kt").experiment_id
    runs = client.search_runs([experiment])
    assert [r.info.run_name for r in runs if r.info.status == "RUNNING"] == []
    killed = [r for r in runs if r.info.status == "FAILED"]
    assert {r.data.tags["bnsearch.kind"] for r in killed} == {"study", "trial"}
    results = results_from_project(tmp_path / "mlruns" / "keras_tuner" / "kt")
    finished = [
        r for r in runs if r.info.status == "FINISHED" and r.data.tags["bnsearch.kind"] == "trial"
    ]
    assert sorted(int(r.data.tags["bnsearch.trial_number"]) for r in finished) == sorted(
        r.spec.number for r in results if r.state.value == "COMPLETE"
    )


@pytest.mark.server
@pytest.mark.slow
def test_ctrl_c_mid_batch_then_a_rerun_retries_the_trials_in_their_blocks(tiny_csv, tmp_path, cli):
    import json
    import os
    import signal
    import subprocess
    import sys
    import time

    args = [
        "study", "--backend", "keras-tuner", "--data", str(tiny_csv), "--target", "label",
        "--epochs", "20", "--hidden-units", "8", "--study-name", "kt", "--confirm-seeds", "0",
        "--n-trials", "9", "--population", "9",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    first = subprocess.Popen(
        [sys.executable, "-m", "bnsearch", *args], cwd=tmp_path, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    folder = tmp_path / "mlruns" / "keras_tuner" / "kt"

    def claimed() -> int:  # the batch's trials the oracle proposed, each put in its block
        try:
            return len(json.loads((folder / "bnsearch_blocks.json").read_text()))
        except (FileNotFoundError, json.JSONDecodeError):
            return 0

    # The whole batch of 9 is claimed in its 3 blocks; its runs start, its population is
    # built and trained next, and no result is told before all of that.
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and claimed() < 9 and first.poll() is None:
        time.sleep(0.05)
    first.send_signal(signal.SIGINT)
    output, _ = first.communicate(timeout=120)
    assert first.returncode == 130, output[-2000:]
    assert claimed() == 9, output[-2000:]
    assert results_from_project(folder) == []  # the batch was cut before any result

    rerun = cli(*args, cwd=tmp_path)  # the rerun's process is not the point: in this one

    assert rerun.returncode == 0, rerun.stderr[-2000:]
    results = results_from_project(folder)
    assert sorted(r.spec.number for r in results) == list(range(9))  # the same trials, retried
    blocks = _by_block(results)
    assert sorted(blocks) == [0, 3, 6]
    for members in blocks.values():
        assert sorted(r.config.placement for r in members) == ["after", "before", "none"]
        assert len({r.spec.seed for r in members}) == 1


def _save_cut_short(path, trial) -> int:
    """Save ``trial`` to ``path`` in a forked process whose file-size limit (RLIMIT_FSIZE)
    refuses the write halfway, as a full disk would; True when the write was refused."""
    import os
    import resource

    limit = path.stat().st_size // 2
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
            trial.save(str(path))
            code = 0
        except OSError:  # EFBIG: Python ignores SIGXFSZ, so the write raises
            code = 27
        finally:
            os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 27


def test_a_save_cut_short_leaves_keras_tuners_trial_file_whole(tmp_path):
    import keras_tuner as kt
    from keras_tuner.src.engine.trial import Trial

    from bnsearch.backends.keras_tuner._adapter import make_keras_tuner_saves_atomic

    make_keras_tuner_saves_atomic()
    hyperparameters = kt.HyperParameters()
    hyperparameters.Float("learning_rate", 1e-3, 0.3, sampling="log")
    trial = Trial(hyperparameters, trial_id="7", status="RUNNING")
    for step in range(500):
        trial.metrics.update("val_loss", 1.0 / (step + 1), step=step)
    path = tmp_path / "trial.json"
    trial.save(str(path))
    trial.status = "COMPLETED"
    for step in range(500, 1000):
        trial.metrics.update("val_loss", 1.0 / (step + 1), step=step)

    assert _save_cut_short(path, trial)
    kept = Trial.load(str(path))  # Keras Tuner's own writer leaves it empty or half
    assert kept.status == "RUNNING"  # the save before, whole: nothing of it is lost
    assert kept.metrics.get_last_value("val_loss") == pytest.approx(1 / 500)
