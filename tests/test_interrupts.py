"""A stop request that Python swallowed still stops the study at the next safe point."""

from __future__ import annotations

import threading

import optuna
import pytest
from mlflow.tracking import MlflowClient

from bnsearch import _interrupts as interrupts
from bnsearch.config import StudyConfig
from bnsearch.networks import NetworkSettings
from bnsearch.study import run_study


@pytest.mark.trains
def test_a_stop_flag_without_its_exception_ends_the_study_cleanly(tiny_csv, stores, monkeypatch):
    # As after a Ctrl-C whose KeyboardInterrupt landed in a weakref callback: the flag is
    # set, no exception is on its way.
    stop = threading.Event()
    monkeypatch.setattr(interrupts, "_STOP", stop)
    config = StudyConfig(
        study_name="stop", data=str(tiny_csv), target="label", n_trials=3, confirm_seeds=0,
        engine="keras", network=NetworkSettings(epochs=3, hidden_units=(4,)), verbose=False,
        **stores,
    )  # fmt: skip
    original = interrupts.raise_if_stopped
    calls = []

    def stop_after_first_epoch() -> None:
        calls.append(1)
        if len(calls) == 3:  # the run loop's, the batch's start, the first epoch's end
            stop.set()
        original()

    monkeypatch.setattr("bnsearch.backends._loop.raise_if_stopped", stop_after_first_epoch)
    with pytest.raises(KeyboardInterrupt):
        run_study(config)
    assert len(calls) == 3  # it stopped at the first check after the flag was set
    study = optuna.load_study(study_name="stop", storage=stores["storage"])
    assert {t.state for t in study.trials} == {optuna.trial.TrialState.FAIL}
    client = MlflowClient(stores["tracking_uri"])
    runs = client.search_runs([client.get_experiment_by_name("stop").experiment_id])
    assert not [r for r in runs if r.info.status == "RUNNING"]
    parent = [r for r in runs if r.data.tags["bnsearch.kind"] == "study"]
    assert [r.info.status for r in parent] == ["KILLED"]


def test_raise_if_stopped_raises_only_once_a_stop_was_requested(monkeypatch):
    stop = threading.Event()
    monkeypatch.setattr(interrupts, "_STOP", stop)
    interrupts.raise_if_stopped()
    stop.set()
    with pytest.raises(KeyboardInterrupt):
        interrupts.raise_if_stopped()


def test_a_real_ctrl_c_inside_a_store_write_is_raised_after_it(monkeypatch):
    """A SIGINT sent to this process inside ``deferred()`` (where the loop asks for a batch
    and tells a result) does not cut the section; the next safe point raises it."""
    import os
    import signal

    stop = threading.Event()
    monkeypatch.setattr(interrupts, "_STOP", stop)
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    interrupts.install_handlers()
    finished = False
    try:
        with interrupts.deferred():
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(1000):  # the handler runs between bytecodes, here
                pass
            finished = True
        assert finished and interrupts._STOP.is_set()
        with pytest.raises(KeyboardInterrupt):
            interrupts.raise_if_stopped()
        with pytest.raises(KeyboardInterrupt):  # outside a section it cuts at once
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(1000):
                pass
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def test_a_held_stop_request_ends_a_database_retry_between_tries(monkeypatch):
    """Inside a deferred section a Ctrl-C is held, but not through a database outage's
    whole retry (about 30 s of waits): it is raised before the first wait."""
    from bnsearch.backends.optuna._storage import retry_transient

    stop = threading.Event()
    monkeypatch.setattr(interrupts, "_STOP", stop)
    tries = []

    def unreachable() -> None:
        tries.append(1)
        stop.set()  # as if Ctrl-C came while the first try waited on the connection
        raise ConnectionError("connection refused")

    with pytest.raises(KeyboardInterrupt):
        retry_transient(unreachable)
    assert tries == [1]


@pytest.mark.trains
@pytest.mark.parametrize("stop_at", ["the ask", "the runs' start"])
def test_a_ctrl_c_before_a_batch_trains_leaves_every_trial_with_its_run(
    tiny_csv, stores, monkeypatch, stop_at
):
    """A real SIGINT while the second batch is asked for, or while its MLflow runs start:
    the study stops, and every trial in the store has its trial run in MLflow (killed)."""
    import os
    import signal

    from bnsearch.backends.optuna import OptunaBackend
    from bnsearch.tracking import MlflowTracker

    stop = threading.Event()
    monkeypatch.setattr(interrupts, "_STOP", stop)
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    patched, method = (
        (OptunaBackend, "ask_batch") if stop_at == "the ask" else (MlflowTracker, "start_trial")
    )
    original, calls = getattr(patched, method), []

    def then_ctrl_c(*args, **kwargs):
        calls.append(1)
        # The ask: the second batch's. The runs' start: the second of the second batch's three.
        if len(calls) == (2 if stop_at == "the ask" else 5):
            os.kill(os.getpid(), signal.SIGINT)
        return original(*args, **kwargs)

    monkeypatch.setattr(patched, method, then_ctrl_c)
    config = StudyConfig(
        study_name="stopped", data=str(tiny_csv), target="label", n_trials=6, confirm_seeds=0,
        engine="keras", network=NetworkSettings(epochs=1, hidden_units=(4,)), verbose=False,
        **stores,
    )  # fmt: skip
    interrupts.install_handlers()
    try:
        with pytest.raises(KeyboardInterrupt):
            run_study(config)
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    study = optuna.load_study(study_name="stopped", storage=stores["storage"])
    assert len(study.trials) == 6
    client = MlflowClient(stores["tracking_uri"])
    runs = client.search_runs([client.get_experiment_by_name("stopped").experiment_id])
    trial_runs = [r for r in runs if r.data.tags["bnsearch.kind"] == "trial"]
    assert sorted(int(r.data.tags["bnsearch.trial_number"]) for r in trial_runs) == list(range(6))
    assert sorted(r.info.status for r in trial_runs) == ["FINISHED"] * 3 + ["KILLED"] * 3
