"""The layout rules, checked on the source: one place for MLflow, one for Optuna's internals,
no private names across modules, both backends behind one protocol."""

from __future__ import annotations

import ast
import inspect
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


def test_no_function_runs_over_60_lines_without_saying_why():
    long = []
    for path in SOURCES:
        lines = path.read_text().splitlines()
        for node in ast.walk(_tree(path)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                header = "\n".join(lines[node.lineno - 2 : node.lineno + 3])
                if length > 60 and "long because" not in header:
                    long.append(f"{path.relative_to(PACKAGE)}:{node.name} ({length} lines)")
    assert long == []


def test_run_study_reads_in_under_50_lines():
    from bnsearch.study import run_study

    assert len(inspect.getsource(run_study).splitlines()) <= 50


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
