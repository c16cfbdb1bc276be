"""The layout rules, checked on the source: one place for MLflow, one for Optuna's internals,
no private names across modules, both backends behind one protocol."""

from __future__ import annotations

import ast
import inspect
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "bnsearch"
SOURCES = sorted(PACKAGE.rglob("*.py"))


def _tree(path: Path) -> ast.AST:
    return ast.parse(path.read_text(), str(path))


def _imports(path: Path):
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.ImportFrom):
            yield node.module or "", [alias.name for alias in node.names]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []


def test_no_module_imports_another_modules_private_name():
    offenders = [
        f"{path.relative_to(PACKAGE)}: {module}.{name}"
        for path in SOURCES
        for module, names in _imports(path)
        for name in names
        if module.startswith("bnsearch") and name.startswith("_") and name != "__version__"
    ]
    assert offenders == []


def test_only_the_package_inits_and_siblings_import_private_modules():
    """``bnsearch.backends._x`` is imported by ``bnsearch/backends/`` only (and re-exported
    through its ``__init__``); the rest of bnsearch uses the package's public names."""
    offenders = []
    for path in SOURCES:
        for module, _ in _imports(path):
            parts = module.split(".")
            private = [i for i, part in enumerate(parts) if part.startswith("_")]
            if module.startswith("bnsearch") and private:
                owner = PACKAGE.parent.joinpath(*parts[: private[0]])
                if owner not in path.parents:
                    offenders.append(f"{path.relative_to(PACKAGE)}: {module}")
    assert offenders == []


def test_only_tracking_talks_to_mlflow():
    users = {
        str(path.relative_to(PACKAGE))
        for path in SOURCES
        for module, _ in _imports(path)
        if module == "mlflow" or module.startswith("mlflow.")
    }
    assert users and all(user.startswith("tracking/") for user in users), users


def test_optuna_private_attributes_are_touched_in_the_adapter_only():
    private = ("_storage", "_study_id", "_trial_id", "_backend")
    offenders = []
    for path in SOURCES:
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.Attribute) and node.attr in private:
                offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno} .{node.attr}")
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                "optuna.storages._"
            ):
                offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.module}")
    assert {o.split(":")[0] for o in offenders} <= {"backends/optuna/_adapter.py"}, offenders


def _keras_tuner_private_names() -> set[str]:
    """Every ``_``-prefixed (not dunder) member of the Keras Tuner objects bnsearch meets:
    its oracles, tuners, trials and hyperparameters, classes and instances."""
    import tempfile

    import keras_tuner as kt

    classes = [
        kt.Oracle, kt.oracles.RandomSearchOracle, kt.oracles.BayesianOptimizationOracle,
        kt.oracles.HyperbandOracle, kt.oracles.GridSearchOracle, kt.Tuner, kt.RandomSearch,
        kt.BayesianOptimization, kt.Hyperband, kt.GridSearch, kt.HyperParameters,
        kt.engine.trial.Trial, kt.Objective,
    ]  # fmt: skip
    hyperparameters = kt.HyperParameters()
    hyperparameters.Float("x", 0.0, 1.0)
    objective = kt.Objective("val_loss", "min")
    with tempfile.TemporaryDirectory() as folder:
        instances = [
            kt.oracles.RandomSearchOracle(objective, 1, hyperparameters=hyperparameters),
            kt.oracles.BayesianOptimizationOracle(objective, 1, hyperparameters=hyperparameters),
            kt.engine.trial.Trial(hyperparameters, trial_id="1"),
            kt.RandomSearch(lambda hp: None, objective=objective, max_trials=1, directory=folder),
        ]
    names = {n for c in classes for n in dir(c)} | {n for i in instances for n in vars(i)}
    return {n for n in names if n.startswith("_") and not n.startswith("__")}


def test_keras_tuner_private_members_are_touched_in_its_adapter_only():
    adapter = "backends/keras_tuner/_adapter.py"
    private = _keras_tuner_private_names()
    offenders = []
    for path in SOURCES:
        where = str(path.relative_to(PACKAGE))
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.Attribute) and node.attr in private:
                offenders.append(f"{where}:{node.lineno} .{node.attr}")
            modules = []
            if isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
            elif isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            for module in modules:
                if module == "keras_tuner.src" or module.startswith("keras_tuner.src."):
                    offenders.append(f"{where}:{node.lineno} {module}")
    assert {o.split(":")[0] for o in offenders} == {adapter}, offenders


def _calls(path: Path) -> set[str]:
    """The names of the functions and methods ``path`` calls (``f()``, ``x.f()``)."""
    found = set()
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.Call):
            func = node.func
            found.add(func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", ""))
    return found


def test_the_paired_search_loop_is_written_once():
    """Both backends run ``backends/_loop.py``: only it sizes a batch, trains it on the
    engine, logs its kept models and applies the failure policy."""
    loop = {"batch_room", "train", "stop_after_failures", "log_kept_models"}
    users = {
        str(path.relative_to(PACKAGE)): sorted(_calls(path) & loop)
        for path in SOURCES
        if path.is_relative_to(PACKAGE / "backends") and _calls(path) & loop
    }
    assert users == {"backends/_loop.py": sorted(loop)}


def test_no_caller_branches_on_the_backend_setting():
    """``config.backend`` picks a class from one table (``backends.backend_class``); nothing
    outside ``config/`` compares it."""
    offenders = []
    for path in SOURCES:
        if path.is_relative_to(PACKAGE / "config"):
            continue
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.Compare):
                sides = [node.left, *node.comparators]
                if any(isinstance(s, ast.Attribute) and s.attr == "backend" for s in sides):
                    offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert offenders == []


def _code_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """A function's lines without its docstring: the Args/Returns/Raises a public function
    owes its reader are not length to cut."""
    length = node.end_lineno - node.lineno + 1
    first = node.body[0]
    is_doc = isinstance(first, ast.Expr) and isinstance(getattr(first, "value", None), ast.Constant)
    if is_doc and isinstance(first.value.value, str):
        length -= first.end_lineno - first.lineno + 1
    return length


def test_no_function_runs_over_60_lines_without_saying_why():
    long = []
    for path in SOURCES:
        lines = path.read_text().splitlines()
        for node in ast.walk(_tree(path)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = _code_lines(node)
                header = "\n".join(lines[node.lineno - 2 : node.lineno + 3])
                if length > 60 and "long because" not in header:
                    long.append(f"{path.relative_to(PACKAGE)}:{node.name} ({length} lines)")
    assert long == []


def test_run_study_reads_in_under_50_lines():
    from bnsearch.study import run_study

    (node,) = ast.parse(textwrap.dedent(inspect.getsource(run_study))).body
    assert _code_lines(node) <= 50


@pytest.mark.parametrize("name", ["OptunaBackend", "KerasTunerBackend"])
def test_both_backends_implement_every_method_of_the_protocol(name):
    import bnsearch.backends as backends

    protocol = backends.Backend
    backend = getattr(backends, name)
    wanted = {n for n, v in vars(protocol).items() if callable(v) and not n.startswith("_")} | set(
        protocol.__annotations__
    )
    assert {n for n in wanted if not hasattr(backend, n)} == set()
    for method in ("open", "run", "results", "budget"):
        assert list(inspect.signature(getattr(backend, method)).parameters) == list(
            inspect.signature(getattr(protocol, method)).parameters
        )


def test_no_class_runs_over_400_lines():
    big = [
        f"{path.relative_to(PACKAGE)}:{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for path in SOURCES
        for node in ast.walk(_tree(path))
        if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno + 1 > 400
    ]
    assert big == []


def test_every_subpackage_says_its_job_in_one_line_and_exports_a_small_face():
    """The folder listing is the architecture: each sub-package's ``__init__`` opens with a
    one-line job and lists its public names (``__all__``)."""
    for init in sorted(PACKAGE.rglob("__init__.py")):
        if init.parent == PACKAGE:
            continue
        module = ast.parse(init.read_text())
        doc = ast.get_docstring(module, clean=False) or ""
        first = doc.split("\n", 1)
        assert doc and first[0].strip(), f"{init}: no docstring"
        assert len(first) == 1 or first[1].startswith("\n") or first[1] == "", (
            f"{init}: the job runs past its first line"
        )
        exported = [
            node
            for node in module.body
            if isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets)
        ]
        assert exported, f"{init}: no __all__"


def test_store_keys_are_written_once_in_trial_keys():
    """Every ``bnsearch.*`` tag or attribute key is a constant of :mod:`bnsearch.trial.keys`;
    elsewhere code names the constant (logger names are not keys)."""
    keys_module = PACKAGE / "trial" / "keys.py"
    offenders = []
    for path in SOURCES:
        if path == keys_module:
            continue
        tree = _tree(path)
        loggers = {
            id(arg)
            for node in ast.walk(tree)
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "getLogger"
            for arg in node.args
        }
        offenders += [
            f"{path.relative_to(PACKAGE)}:{node.lineno} {node.value!r}"
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and re.fullmatch(r"bnsearch\.[a-z_.]+", node.value)
            and id(node) not in loggers
        ]
    assert offenders == []


def test_a_deprecation_met_through_bnsearch_fails_the_test_and_none_is_ignored_wholesale():
    import tomllib

    pyproject = PACKAGE.parent / "pyproject.toml"
    filters = tomllib.loads(pyproject.read_text())["tool"]["pytest"]["ini_options"][
        "filterwarnings"
    ]
    assert "error::DeprecationWarning:bnsearch" in filters
    wholesale = [f for f in filters if f.startswith("ignore::") and f.count(":") == 2]
    assert wholesale == []


@pytest.mark.server  # a pytest process of its own
@pytest.mark.parametrize("workers", ["0", "2"])
def test_a_skipped_test_fails_the_run_where_ci_asks_for_no_skips(workers):
    probe = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", workers]
    probe.append(str(PACKAGE.parent / "tests" / "support" / "skip_probe.py"))
    env = {**os.environ, "BNSEARCH_NO_SKIPS": "1"}
    failed = subprocess.run(probe, cwd=PACKAGE.parent, env=env, capture_output=True, text=True)
    assert failed.returncode == 1, failed.stdout[-2000:]
    assert "skip_probe.py::test_skipped: Skipped: probe" in failed.stdout
    env.pop("BNSEARCH_NO_SKIPS")
    passed = subprocess.run(probe, cwd=PACKAGE.parent, env=env, capture_output=True, text=True)
    assert passed.returncode == 0, passed.stdout[-2000:]
