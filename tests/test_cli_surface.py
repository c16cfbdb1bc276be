"""Every path a user types: each command of the command table (``bnsearch.cli.COMMANDS``) run
in-process the way a person types it — bare, on a tiny study made for it, and with each of its
optional flags alone — ends in exit 0, or in a refusal: exit 2 and one ``bnsearch: error:``
line (a sweep: one ``sweep: <file>: error`` line). Never a traceback, never argparse's usage.

The cases are derived from the parsers (every optional action of every sub-command), so a new
command or flag without a sample value in :data:`VALUES` fails
:func:`test_every_command_has_its_base_arguments_and_every_flag_a_sample_value` (and its own
case). Training is real (one epoch, 4 units, 320 rows) and the stores are real MLflow and
Optuna SQLite files: each case runs in its own copy of a workspace whose default stores
(``mlruns/``) already hold the study ``tiny`` at its target, so most cases find it up to date
and cost a fraction of a second.

Three spots are replaced, because what lies behind them is not argument handling and would not
fit the time of a test file (:func:`_fakes` says why at each): the ``exec`` of ``mlflow ui``
(a server), the benchmarks behind ``bench``, and — for the flags ``replay`` and ``export``
share with ``study`` only — the library call they end in.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bnsearch.errors import BnsearchError
from tests.conftest import write_tiny_csv

pytestmark = pytest.mark.slow

STUDY_FILE = "studies/tiny.toml"

#: Each command's arguments when no optional flag is given: what the command needs to run on
#: the tiny study (its study file, a required option, a folder). Relative to the workspace.
BASE: dict[str, list[str]] = {
    "study": [STUDY_FILE],
    "sweep": ["studies"],
    "worker": [STUDY_FILE],
    "prepare": [STUDY_FILE],
    "ui": [],
    "report": ["--study-name", "tiny"],
    "sync": [STUDY_FILE],
    "replay": [STUDY_FILE, "--trial", "0"],
    "export": [STUDY_FILE],
    "model": [STUDY_FILE],
    "bench": [],
    "examples": ["{ws}/examples-copy"],
}

#: Commands not run bare (with no argument at all), and why.
NOT_BARE = {
    "study": "bare, it is README's first command: the default study, 256 population trials on "
    "6,000 rows (too long here)",
}

#: A sample value for every flag that takes one ({ws}: the case's workspace). Valid values,
#: where cheap not the default, so the flag's own path runs; a refusal (exit 2, one line) is a
#: fine outcome, a traceback never.
VALUES: dict[str, str] = {
    "--study-name": "tiny",
    "--storage": "sqlite:///{ws}/mlruns/optuna.db",
    "--tracking-uri": "sqlite:///{ws}/mlruns/mlflow.db",
    "--n-trials": "2",
    "--until": "settled",
    "--timeout": "60",
    "--target-trials": "4",
    "--seed": "1",
    "--backend": "keras-tuner",
    "--tuner": "bayesian",
    "--sampler": "random",
    "--pruner": "median",
    "--engine": "population",
    "--population": "8",
    "--heartbeat-interval": "5",
    "--grace-period": "120",
    "--metric": "val_accuracy",
    "--threshold": "0.02",
    "--confirm-seeds": "1",
    "--data": "tiny.csv",
    "--target": "label",
    "--epochs": "2",
    "--batch-size": "8",
    "--validation-split": "0.25",
    "--hidden-units": "4,4",
    "--activation": "tanh",
    "--initializer": "uniform",
    "--family": "cnn",
    "--conv-filters": "4,8",
    "--kernel-size": "3",
    "--builder": "tiny_nets:build",
    "--model": "tiny_nets:build",
    "--show": "tiny_nets:build",
    "--task": "classification",
    "--placements": "none,before,after",
    "--activations": "tanh,relu",
    "--host": "0.0.0.0",  # not the default, so that the exec'd command shows it was read
    "--port": "5001",
    "--out": "{ws}/report-out",
    "--sweep": "studies",
    "--placement": "after",
    "--register": "tiny-model",
    "--populations": "1,8",
    "--rows": "200",
    "--question": "both",
}

#: The study, as a study file: two placements (so an export trains two models), two blocks.
STUDY = """\
name = "tiny"
data = "../tiny.csv"
target = "label"
target_trials = 4
confirm_seeds = 0
engine = "keras"
[network]
epochs = 1
hidden_units = [4]
[space]
placement = ["none", "after"]
"""

BUILDER = """\
import keras
from bnsearch.blocks import dense_block

def build(config, input_shape, n_classes, seed):
    inputs = keras.Input(shape=input_shape)
    x = dense_block(inputs, 4, config, activation="relu", name="tiny_1")
    return keras.Model(inputs, keras.layers.Dense(n_classes, activation="softmax")(x))
"""


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    from bnsearch.cli import build_parser

    parser = build_parser()
    (action,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _optional_actions(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [
        a
        for a in parser._actions
        if a.option_strings and not a.required and not isinstance(a, argparse._HelpAction)
    ]


def _flag(action: argparse.Action) -> str:
    return next(s for s in action.option_strings if s.startswith("--"))


@dataclass(frozen=True)
class Case:
    command: str
    args: tuple[str, ...]  # as typed, {ws} not yet filled in
    flag: str | None = None  # the optional flag this case gives alone
    missing: str | None = None  # a flag without a sample value

    @property
    def id(self) -> str:
        if self.flag:
            return f"{self.command} {self.flag}"
        return f"{self.command} (bare)" if not self.args else self.command


def _cases() -> list[Case]:
    """Every command bare and on the tiny study, then with each optional flag alone."""
    cases = []
    for name, parser in _subparsers().items():
        base = tuple(BASE.get(name, []))
        if name not in NOT_BARE:
            cases.append(Case(name, ()))
        if base:
            cases.append(Case(name, base))
        for action in _optional_actions(parser):
            flag = _flag(action)
            if flag in base:  # given in the base case already
                continue
            if action.nargs == 0:  # store_true and the like
                cases.append(Case(name, (*base, flag), flag))
            elif flag in VALUES:
                cases.append(Case(name, (*base, flag, VALUES[flag]), flag))
            else:
                cases.append(Case(name, base, flag, missing=flag))
    return cases


CASES = _cases()


def test_every_command_has_its_base_arguments_and_every_flag_a_sample_value():
    from bnsearch.cli import COMMANDS

    parsers = _subparsers()
    assert [c.name for c in COMMANDS] == list(parsers)
    assert not set(parsers) - set(BASE), f"add these commands to BASE: {set(parsers) - set(BASE)}"
    missing = sorted({f"{c.command} {c.missing}" for c in CASES if c.missing})
    assert not missing, f"add a sample value to VALUES for: {', '.join(missing)}"
    for name, parser in parsers.items():
        required = [_flag(a) for a in parser._actions if a.option_strings and a.required]
        assert all(flag in BASE[name] for flag in required), (name, required)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the tiny CSV, ``studies/tiny.toml``, a network builder module and the
    study ``tiny`` already at its target in the default stores ``mlruns/``."""
    from bnsearch.cli import main

    folder = tmp_path_factory.mktemp("surface") / "ws"
    (folder / "studies").mkdir(parents=True)
    write_tiny_csv(folder)
    (folder / STUDY_FILE).write_text(STUDY)
    (folder / "tiny_nets.py").write_text(BUILDER)
    here = os.getcwd()
    handlers = _signal_handlers()
    os.chdir(folder)
    try:
        code = main(["study", STUDY_FILE, "--quiet"])
    finally:
        os.chdir(here)
        _restore(handlers)
    assert code == 0
    return folder


def _signal_handlers() -> dict[int, Any]:
    import signal

    return {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}


def _restore(handlers: dict[int, Any]) -> None:
    import signal

    for sig, handler in handlers.items():
        signal.signal(sig, handler)


def _fakes(case: Case, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, tuple, dict]]:
    """Replace what lies beyond argument handling for ``case`` (see the module docstring);
    the calls those replacements received."""
    calls: list[tuple[str, tuple, dict]] = []

    def fake(name: str, result: Any = None):
        def record(*args: Any, **kwargs: Any) -> Any:
            calls.append((name, args, kwargs))
            return result

        return record

    if case.command == "ui":
        # `ui` ends by exec-ing `mlflow ui`, which would replace this process with a server:
        # what is checked is bnsearch's handling of the flags up to that point, not MLflow.
        monkeypatch.setattr(os, "execvp", fake("execvp"))
        monkeypatch.setattr(os, "environ", os.environ.copy())  # ui sets the server's env
    if case.command == "bench":
        # The benchmarks run 30 s to minutes each and no flag makes them short: checked is
        # which benchmark the flags pick and with what, not the benchmarks themselves.
        import bnsearch.bench

        benchmarks = (
            "run_benchmark",
            "compare_backends",
            "profile_steps",
            "run_settled_benchmark",
        )
        for name in benchmarks:
            monkeypatch.setattr(bnsearch.bench, name, fake(name))
    if case.command in LIBRARY_CALLS and case.flag in _study_flags():
        # A real replay trains for seconds, a real export trains and logs a model a
        # placement: 38 cases each would not fit.
        # The flags they share with `study` reach them only through config_from_args, which
        # the real cases of study, worker and prepare run; the command bare, on the tiny study
        # and with its own flags runs for real.
        module, name = LIBRARY_CALLS[case.command]
        monkeypatch.setattr(importlib.import_module(module), name, fake(name))
    return calls


#: Where `replay` and `export` hand the parsed config to the library.
LIBRARY_CALLS = {
    "replay": ("bnsearch.replay", "replay_trial"),
    "export": ("bnsearch.export", "export_best"),
}


def _study_flags() -> set[str]:
    """The flags of `study`: the study settings, --quiet and --debug."""
    return {_flag(a) for a in _optional_actions(_subparsers()["study"])}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_a_command_as_typed_ends_in_success_or_a_one_line_refusal(
    case: Case, workspace: Path, tmp_path: Path, cli, monkeypatch: pytest.MonkeyPatch
):
    assert case.missing is None, f"no sample value for {case.missing}; add one to VALUES"
    folder = tmp_path / "ws"
    shutil.copytree(workspace, folder)
    # `python -m bnsearch` puts the working folder on sys.path; that is where --builder's
    # module is found.
    monkeypatch.syspath_prepend(str(folder))
    calls = _fakes(case, monkeypatch)
    args = [a.replace("{ws}", str(folder)) for a in case.args]
    try:
        result = cli(case.command, *args, cwd=folder)
    except BnsearchError:
        # --debug shows the error with its traceback, by design; anything else is a bug.
        assert "--debug" in args
        return
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output[-3000:]
    assert result.returncode in (0, 2), output[-3000:]
    if case.args and case.flag is None:  # the command on the tiny study, as made for it
        assert result.returncode == 0, output[-3000:]
    assert "usage:" not in result.stderr
    assert _refusals(case.command, result) == (1 if result.returncode == 2 else 0), output[-3000:]
    if case.command == "ui" and result.returncode == 0:
        ((_, (program, argv), _),) = calls  # the exec of `python -m mlflow ui ...`
        assert program == sys.executable and argv[1:4] == ["-m", "mlflow", "ui"]
        for flag, default in (("--port", "5000"), ("--host", "127.0.0.1")):
            assert argv[argv.index(flag) + 1] == (VALUES[flag] if case.flag == flag else default)
    if case.command == "bench" or (case.command in LIBRARY_CALLS and calls):
        assert len(calls) == 1  # one benchmark, picked by the flags; one library call
    if case.command == "bench" and result.returncode == 0:
        _check_bench_pick(case.flag, *calls[0])


#: The benchmark each of `bench`'s flags picks instead of the engines' timing.
BENCH_PICKS = {
    "--backends": "compare_backends",
    "--until": "compare_backends",
    "--profile": "profile_steps",
    "--settled": "run_settled_benchmark",
}


def _check_bench_pick(flag: str | None, name: str, args: tuple, kwargs: dict) -> None:
    """The benchmark ``flag`` picks, handed what the flag says."""
    import bnsearch.bench

    assert name == BENCH_PICKS.get(flag or "", "run_benchmark"), (flag, name)
    if name == "compare_backends":
        until = flag == "--until"
        assert kwargs["variants"] == (bnsearch.bench.UNTIL if until else bnsearch.bench.BACKENDS)
    if name == "run_benchmark":
        assert kwargs == {
            "short": flag == "--short",
            "populations": [1, 8] if flag == "--populations" else None,  # VALUES' "1,8"
            "n_rows": 200 if flag == "--rows" else None,
        }


def _refusals(command: str, result: Any) -> int:
    """Lines of ``result`` that refuse something: ``bnsearch: error:`` on stderr; a sweep
    says each study's refusal on its own stdout line instead (and exits 2 once)."""
    errors = [line for line in result.stderr.splitlines() if line.startswith("bnsearch: error:")]
    if command == "sweep" and not errors:
        said = [line for line in result.stdout.splitlines() if line.startswith("sweep: ")]
        return min(1, sum(": error" in line for line in said))
    return len(errors)


def test_a_path_under_a_regular_file_is_a_one_line_refusal_on_every_command(
    workspace: Path, tmp_path: Path, cli, monkeypatch: pytest.MonkeyPatch
):
    """``--storage``/``--tracking-uri``/``--out`` whose folder would lie inside a file (here
    the CSV): exit 2 and one line naming the path, on every command that takes the flag."""
    folder = tmp_path / "ws"
    shutil.copytree(workspace, folder)
    _fakes(Case("ui", ()), monkeypatch)  # should `ui` not refuse, no server starts
    bad = {
        "--storage": "sqlite:///tiny.csv/x/o.db",
        "--tracking-uri": "sqlite:///tiny.csv/x/m.db",
        "--out": "tiny.csv/x",
    }
    tried = []
    for name, parser in _subparsers().items():
        flags = {_flag(a) for a in _optional_actions(parser)}
        for flag, url in bad.items():
            if flag not in flags:
                continue
            tried.append(f"{name} {flag}")
            result = cli(name, *BASE[name], flag, url, cwd=folder)
            output = result.stdout + result.stderr
            assert result.returncode == 2, (name, flag, output[-3000:])
            assert "Traceback" not in output and _refusals(name, result) == 1, output[-3000:]
            lines = result.stderr.splitlines() if name != "sweep" else result.stdout.splitlines()
            assert any("tiny.csv/x" in line for line in lines), (name, flag, output[-3000:])
    expected = {"export --storage", "sweep --tracking-uri", "ui --tracking-uri", "report --out"}
    assert expected <= set(tried)


def test_argparse_refusals_are_one_line_too(tmp_path: Path, cli):
    for args in (["sweep"], ["replay", STUDY_FILE], ["study", "--engine", "gpu"], ["nope"]):
        result = cli(*args, cwd=tmp_path)
        assert result.returncode == 2, args
        (line,) = result.stderr.splitlines()
        assert line.startswith("bnsearch: error:") and "--help" in line, line
