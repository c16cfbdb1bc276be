"""An engine registered from Python (``bnsearch.engines.register_engine``): what the tests'
stand-in engine uses, while nothing a user types offers it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import trial_runs
from tests.support.standin import standin_env

#: ``python -m tests.support.standin ARGS`` (bnsearch's CLI with the stand-in engine
#: registered), then whether TensorFlow was imported.
_LAUNCH = """
import runpy, sys
sys.argv = ["standin", *sys.argv[1:]]
try:
    runpy.run_module("tests.support.standin", run_name="__main__", alter_sys=True)
except SystemExit as exit_:
    code = exit_.code
print("tensorflow imported" if "tensorflow" in sys.modules else "no tensorflow")
sys.exit(code)
"""


def test_the_package_offers_no_standin_engine(tiny_csv: Path, tmp_path: Path, cli, capsys):
    flag = cli("study", "--data", str(tiny_csv), "--engine", "standin", cwd=tmp_path)
    assert flag.returncode == 2
    assert flag.stderr.count("\n") == 1 and "invalid choice: 'standin'" in flag.stderr
    study_file = tmp_path / "s.toml"
    study_file.write_text(f'data = "{tiny_csv}"\ntarget = "label"\nengine = "standin"\n')
    keyed = cli("study", str(study_file), cwd=tmp_path)
    assert keyed.returncode == 2
    assert keyed.stderr == (
        "bnsearch: error: unknown engine 'standin'; choose one of population, keras.\n"
    )
    with pytest.raises(SystemExit):
        cli("study", "--help", cwd=tmp_path)
    shown = capsys.readouterr().out
    assert "{population,keras}" in shown and "standin" not in shown


def test_a_builtin_engine_cannot_be_registered_over():
    from bnsearch.engines import register_engine
    from tests.support.standin import StandinEngine

    with pytest.raises(ValueError, match="'keras' is a built-in engine"):
        register_engine("keras", StandinEngine)


@pytest.mark.server
def test_a_registered_engine_runs_a_study_as_typed_without_tensorflow(tiny_csv, tmp_path):
    stores = [f"--storage=sqlite:///{tmp_path}/o.db", f"--tracking-uri=sqlite:///{tmp_path}/m.db"]
    done = subprocess.run(
        [
            sys.executable, "-c", _LAUNCH, "study", "--data", str(tiny_csv), "--target", "label",
            "--engine", "standin", "--epochs", "2", "--n-trials", "6", "--confirm-seeds", "0",
            "--study-name", "stand", *stores,
        ],  # fmt: skip
        cwd=tmp_path, env=standin_env(BNSEARCH_STANDIN_EPOCH_S="0"),
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.rstrip().endswith("no tensorflow"), done.stdout[-1000:]
    assert "+6 trials" in done.stdout, done.stdout[-2000:]
    _, runs = trial_runs(f"sqlite:///{tmp_path}/m.db", "stand")
    assert len(runs) == 6
    assert {run.data.tags["bnsearch.engine"] for run in runs} == {"standin"}
