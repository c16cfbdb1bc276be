"""A study says what it cannot know and stops quietly: advice when learning rates diverge, a
notice before training when the cap can never settle, one line on SIGTERM or Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bnsearch.stats import min_blocks_to_settle
from tests._in_flight import wait_for_a_batch_in_flight
from tests.conftest import empty_mlflow_store_at


def _diverging_study_file(folder: Path) -> Path:
    """A study file whose learning rates are far too large for a ReLU network."""
    path = folder / "too_fast.toml"
    path.write_text(
        'data = "tiny.csv"\ntarget = "label"\n\n[network]\nactivation = "relu"\n\n'
        "[space]\nlearning_rate = [1000.0, 100000.0]\n"
    )
    return path


@pytest.mark.trains
def test_a_learning_rate_range_that_diverges_gets_one_line_of_advice(cli, tmp_path, tiny_csv):
    study_file = _diverging_study_file(tmp_path)
    empty_mlflow_store_at(tmp_path / "mlruns" / "mlflow.db")  # the default store, made
    result = cli(
        "study", str(study_file), "--epochs", "1", "--n-trials", "3", "--hidden-units", "8,8",
        "--confirm-seeds", "0", "--study-name", "too-fast", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    advice = [line for line in result.stdout.splitlines() if "diverged (" in line]
    assert len(advice) == 1, result.stdout
    line = advice[0]
    assert re.search(r"\d+ of 3 trials diverged \(loss became inf or nan at epoch 0\)", line)
    diverged = [float(x) for x in re.search(r"at learning rates? ([\d.e+]+)", line).groups()]
    low, high = (
        float(x) for x in re.search(r"learning_rate = \[([\d.e+-]+), ([\d.e+-]+)\]", line).groups()
    )
    assert 0 < low < high < min(diverged)  # a range below every rate that diverged
    assert line.endswith("in a study file, or --standardize.")


@pytest.mark.trains
def test_a_cap_too_small_to_settle_says_so_before_the_first_trial(cli, tmp_path, tiny_csv):
    need = min_blocks_to_settle()
    empty_mlflow_store_at(tmp_path / "mlruns" / "mlflow.db")  # the default store, made
    result = cli(
        "study", "--data", str(tiny_csv), "--target", "label", "--n-trials", "3",
        "--epochs", "1", "--hidden-units", "4", "--confirm-seeds", "0", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    notice = [i for i, line in enumerate(lines) if "can only report, not decide" in line]
    first_trial = next(i for i, line in enumerate(lines) if line.startswith("[1/3]"))
    assert len(notice) == 1 and notice[0] < first_trial, result.stdout
    assert f"3 trials make 1 block; the verdict needs at least {need} blocks" in lines[notice[0]]
    assert f"raise --n-trials to {need * 3}" in lines[notice[0]]

    # Under a fixed budget the study decides once, on what it has: no such notice.
    budget = cli(
        "study", "--data", str(tiny_csv), "--target", "label", "--n-trials", "3",
        "--epochs", "1", "--hidden-units", "4", "--confirm-seeds", "0", "--until", "budget",
        "--study-name", "fixed", cwd=tmp_path,
    )  # fmt: skip
    assert budget.returncode == 0, budget.stderr
    assert "can only report" not in budget.stdout


@pytest.mark.server
@pytest.mark.parametrize("number", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_that_lands_in_a_finalizer_prints_nothing_and_is_kept(tmp_path, number):
    # Where TensorFlow's weakref callbacks and __del__ methods run, Python swallows the
    # handler's KeyboardInterrupt and prints "Exception ignored in ...": here on purpose.
    script = textwrap.dedent(f"""
        import os, signal
        from bnsearch import _interrupts
        _interrupts.install_handlers()
        class Finalized:
            def __del__(self):
                os.kill(os.getpid(), {int(number)})
                for _ in range(100000):
                    pass
        Finalized()
        print("stop kept" if _interrupts._STOP.is_set() else "stop lost")
        try:
            _interrupts.raise_if_stopped()
        except KeyboardInterrupt:
            print("raised at the safe point")
    """)
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["stop kept", "raised at the safe point"]
    assert done.stderr == ""


def _args(tiny_csv: Path, n_trials: str) -> list[str]:
    return [
        "study", "--data", str(tiny_csv), "--target", "label", "--epochs", "2",
        "--hidden-units", "8,8", "--study-name", "stopped", "--engine", "keras",
        "--confirm-seeds", "0", "--n-trials", n_trials,
    ]  # fmt: skip


def _start(tmp_path: Path, tiny_csv: Path, n_trials: str) -> subprocess.Popen:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.Popen(
        [sys.executable, "-m", "bnsearch", *_args(tiny_csv, n_trials)],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


@pytest.mark.server
@pytest.mark.slow
def test_sigterm_mid_study_prints_one_line_and_the_rerun_resumes(tmp_path, tiny_csv, cli):
    process = _start(tmp_path, tiny_csv, "30")
    seen, told = "", 0
    for line in process.stdout:  # the first block's three lines: the study is under way
        seen += line
        told += bool(re.match(r"\[\s*\d+/\d+\] ", line))
        if told == 3:
            break
    else:
        raise AssertionError(f"no block finished:\n{seen}\n{process.stderr.read()}")
    # The next block is asked for and its runs started: training or told, in flight.
    wait_for_a_batch_in_flight(process, tmp_path / "mlruns")
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr[-2000:]
    assert "Traceback" not in stderr and "Exception ignored" not in stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert stderr.startswith("bnsearch: interrupted")

    rerun = cli(*_args(tiny_csv, "3"), cwd=tmp_path)  # the rerun: in this process
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    already = int(re.search(r"(\d+) trials already in the study", rerun.stdout).group(1))
    assert already > 0
    assert "Verdict:" in rerun.stdout
