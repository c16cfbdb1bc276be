"""The README's and the getting-started page's commands, run from an empty folder against
the built wheel installed in a virtual environment of its own (not this checkout).

The new environment borrows this one's dependencies through a ``.pth`` line (no second
TensorFlow download); ``bnsearch`` itself comes from the wheel only: a path entry added by
a ``.pth`` line has its own ``.pth`` files (this checkout's editable install) ignored.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.request
from pathlib import Path

import pytest

from tests.test_verdict_glance import assert_the_default_study_ends_with_the_verdict_at_a_glance

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow

#: Each verb the two pages run, and how this test runs it (``python`` is the wheel's).
#: Data and model commands get a short budget (trials, seeds, epochs), as the pages' "your
#: data" lines are forms to fill in; ``openml:`` needs a network this CI does not promise,
#: and the local forms (.csv, .npz, sklearn:) run the same loader and study.
VERBS = {"study", "model", "ui", "report", "examples"}


@pytest.fixture(scope="module")
def wheel_python(built_wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("wheel_env")
    wheel = built_wheel
    env = folder / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    python = env / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    Path(purelib, "bnsearch_test_dependencies.pth").write_text(
        sysconfig.get_paths()["purelib"] + "\n"
    )
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
         "--no-index", "-q", str(wheel)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr[-2000:]
    return python


def _run(python: Path, cwd: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(python), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def _documented_verbs() -> set[str]:
    pages = (ROOT / "README.md").read_text() + (ROOT / "docs" / "getting-started.md").read_text()
    return set(re.findall(r"python -m bnsearch (\w+)", pages))  # in blocks and in prose


def test_every_verb_the_pages_run_is_run_here():
    assert _documented_verbs() == VERBS


@pytest.mark.server
def test_the_wheel_is_what_runs_and_says_its_version(wheel_python, tmp_path):
    found = _run(wheel_python, tmp_path, "-c", "import bnsearch; print(bnsearch.__file__)")
    assert found.returncode == 0, found.stderr[-2000:]
    assert Path(found.stdout.strip()).is_relative_to(wheel_python.parent.parent)
    version = subprocess.run(
        [str(wheel_python.parent / "bnsearch"), "--version"], capture_output=True, text=True
    )
    assert version.returncode == 0 and version.stdout.startswith("bnsearch "), version


#: Runs each command (one per argument, its words joined by ``|``) in turn in this one
#: interpreter as ``python -m bnsearch WORDS`` runs it (``bnsearch/__main__.py`` through
#: :mod:`runpy`), each one's output led by a line :data:`_MARK` on stdout and on stderr and
#: its exit code printed after it: the pages' later commands share one interpreter start
#: and one TensorFlow import instead of one each.
_MARK = "=== bnsearch-wheel-test command ==="
_IN_ONE_PROCESS = f"""
import runpy, sys
for command in sys.argv[1:]:
    print({_MARK!r}, flush=True)
    print({_MARK!r}, file=sys.stderr, flush=True)
    sys.argv = ["bnsearch", *command.split("|")]
    try:
        runpy.run_module("bnsearch", run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    sys.stdout.flush()
    sys.stderr.flush()
    print({_MARK!r}, "exit", code, flush=True)
"""


def _run_in_one_process(
    python: Path, cwd: Path, *commands: tuple[str, ...]
) -> list[tuple[int, str, str]]:
    """``(returncode, stdout, stderr)`` of each ``python -m bnsearch`` command, run in turn
    in one process of the wheel's interpreter (:data:`_IN_ONE_PROCESS`)."""
    done = _run(python, cwd, "-c", _IN_ONE_PROCESS, *("|".join(words) for words in commands))
    assert done.returncode == 0, done.stderr[-3000:]
    outs = done.stdout.split(_MARK + "\n")[1:]
    errs = done.stderr.split(_MARK + "\n")[1:]
    assert len(outs) == len(errs) == len(commands), done.stdout[-3000:] + done.stderr[-3000:]
    results = []
    for out, err in zip(outs, errs, strict=True):
        out, _, after = out.rpartition(_MARK + " exit ")
        results.append((int(after.split()[0]), out, err))
    return results


@pytest.mark.server
@pytest.mark.trains
def test_the_pages_commands_work_from_an_empty_folder(wheel_python, tmp_path):
    python = wheel_python
    study = _run(python, tmp_path, "-m", "bnsearch", "study")  # the README's first command
    assert study.returncode == 0, study.stderr[-3000:]
    assert "\nVerdict: " in study.stdout and "MLflow UI: python -m bnsearch ui" in study.stdout

    # The later commands, in a second process (so `report` reads the study back from its
    # store, not from the study's process), all in that one.
    _write_your_data_and_model(tmp_path)
    report, verbose, examples, data, model = _run_in_one_process(
        python,
        tmp_path,
        ("report", "--study-name", "bnsearch-synthetic"),
        ("report", "--study-name", "bnsearch-synthetic", "--verbose"),
        ("examples", "studies"),
        ("study", "--data", "customers.csv", "--target", "churned", "--n-trials", "3",
         "--confirm-seeds", "0", "--epochs", "2"),
        ("model", "--show", "my_model.keras"),
    )  # fmt: skip
    answers = {
        ("report", "--study-name", "bnsearch-synthetic"): report,
        ("report", "--study-name", "bnsearch-synthetic", "--verbose"): verbose,
    }

    # The glance of the default study, and `report` reading it back (plain and --verbose):
    assert_the_default_study_ends_with_the_verdict_at_a_glance(
        study.stdout, lambda *args: answers[args]
    )

    assert examples[0] == 0, examples[2][-2000:]
    assert sorted(p.name for p in (tmp_path / "studies").glob("*.toml")) == sorted(
        p.name for p in (ROOT / "studies").glob("*.toml")
    )
    assert data[0] == 0, data[2][-3000:]
    assert "study 'bnsearch-customers' on customers (240 rows" in data[1]
    assert model[0] == 0, model[2][-3000:]
    assert "sites" in model[1]

    _ui_answers(python, tmp_path)


def _write_your_data_and_model(folder: Path) -> None:
    """The reader's own data and model, which the pages' commands then read: made in this
    process (the same NumPy and Keras the wheel's environment borrows), not a page command."""
    import keras
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.normal(size=(240, 5))
    y = (x[:, 0] + x[:, 1] > 0).astype(int)
    with open(folder / "customers.csv", "w") as out:
        out.write("a,b,c,d,e,churned\n")
        out.writelines(
            ",".join(f"{v:.4f}" for v in row) + f",{label}\n"
            for row, label in zip(x, y, strict=True)
        )
    # Named, so that this process's automatic layer names (other tests' models) stay as they were.
    inputs = keras.Input(shape=(5,), name="features")
    hidden = keras.layers.Dense(8, activation="relu", name="hidden")(inputs)
    output = keras.layers.Dense(2, activation="softmax", name="churn")(hidden)
    keras.Model(inputs, output, name="my_model").save(str(folder / "my_model.keras"))


def _ui_answers(python: Path, folder: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [str(python), "-m", "bnsearch", "ui", "--study-name", "bnsearch-synthetic",
         "--port", str(port)],
        cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as r:
                    assert r.status == 200
                    break
            except OSError:
                assert server.poll() is None, server.stdout.read() if server.stdout else ""
                assert time.monotonic() < deadline, "the MLflow UI did not answer in 120 s"
                time.sleep(0.2)
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=60)
    assert f"http://127.0.0.1:{port}/#/experiments/" in output, output[-2000:]
