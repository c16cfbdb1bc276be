"""The package as installed: its version, its name in usage lines, a bare command, and an
extra's driver missing."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import version

import pytest

import bnsearch


def test_version_is_the_installed_distributions_and_the_cli_says_it(tmp_path, cli, capsys):

    assert bnsearch.__version__ == version("bnsearch")
    with pytest.raises(SystemExit) as exit_info:
        cli("--version", cwd=tmp_path)
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"bnsearch {bnsearch.__version__}"


@pytest.mark.server
def test_a_bare_command_prints_help_and_usage_names_the_program_typed(tmp_path):
    script = tmp_path.parent / "bin-of-test" / "bnsearch"
    bare = subprocess.run(
        [sys.executable, "-m", "bnsearch"], cwd=tmp_path, capture_output=True, text=True
    )
    assert bare.returncode == 0, bare.stderr[-2000:]
    assert bare.stdout.startswith("usage: python -m bnsearch ")
    assert "study" in bare.stdout and "report" in bare.stdout
    installed = subprocess.run(
        [str(sys.executable), "-c", "import sys; from bnsearch.cli import main; "
         f"sys.argv[0] = {str(script)!r}; sys.exit(main(['study', '--help']))"],
        cwd=tmp_path, capture_output=True, text=True,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr[-2000:]
    assert installed.stdout.startswith("usage: bnsearch study ")


@pytest.mark.server
def test_a_postgresql_storage_without_the_driver_names_the_extra(tmp_path, cli, monkeypatch):
    """psycopg comes with bnsearch[postgres]: without it, one line naming the extra (the
    driver is hidden from the import system for this test only: ``import psycopg`` fails)."""
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if not installed
    result = cli(
        "study", "--storage", "postgresql://bn:Secret-77@127.0.0.1:5432/test",
        "--n-trials", "3", "--quiet", cwd=tmp_path,
    )  # fmt: skip
    errors = [line for line in result.stderr.splitlines() if line.startswith("bnsearch: ")]
    assert result.returncode == 2, result.stderr[-2000:]
    assert len(errors) == 1 and "pip install 'bnsearch[postgres]'" in errors[0], errors
    assert "Secret-77" not in result.stdout + result.stderr


#: Runs each command (one per argument, its words joined by ``|``) in turn in one fresh
#: interpreter and prints, after each, its exit code and whether TensorFlow was imported by
#: then: ``sys.modules`` only grows, so the first command to import it is the one named.
_WITHOUT_TENSORFLOW = """
import json, sys
from bnsearch.cli import main
for command in sys.argv[1:]:
    try:
        code = main(command.split("|"))
    except SystemExit as exit_:  # --help, a usage error
        code = exit_.code
    print("case", json.dumps([command, code, "tensorflow" in sys.modules]), flush=True)
"""


@pytest.mark.trains
@pytest.mark.server
def test_commands_that_train_nothing_never_import_tensorflow(tiny_csv, tmp_path, cli):
    study = cli(
        "study", "--data", str(tiny_csv), "--target", "label", "--epochs", "1",
        "--hidden-units", "4", "--n-trials", "3", "--confirm-seeds", "0", "--quiet",
        "--study-name", "tiny", cwd=tmp_path,
    )  # fmt: skip
    assert study.returncode == 0, study.stderr[-2000:]
    # A study whose MLflow server or Optuna storage server is not there: refused before
    # TensorFlow's seconds of import, the storage's password never shown.
    refused_store = (
        "study", "--data", str(tiny_csv), "--target", "label",
        "--tracking-uri", "http://127.0.0.1:1/",
    )  # fmt: skip
    refused_storage = (
        "study", "--data", str(tiny_csv), "--target", "label", "--study-name", "elsewhere",
        "--storage", "postgresql://bn:Secret-31@127.0.0.1:1/test",
    )  # fmt: skip
    cases = {
        ("report", "--study-name", "tiny"): 0,
        ("sync", "--study-name", "tiny"): 0,
        ("ui", "--help"): 0,
        ("report",): 2,  # a usage error: one line, exit 2
        refused_store: 2,
        refused_storage: 2,
        ("study", "--n-trials", "x"): 2,
    }
    result = subprocess.run(
        [sys.executable, "-c", _WITHOUT_TENSORFLOW, *("|".join(args) for args in cases)],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    seen = [json.loads(line[5:]) for line in result.stdout.splitlines() if line[:5] == "case "]
    assert [command for command, *_ in seen] == ["|".join(args) for args in cases], seen
    for (args, expected), (_, code, imported) in zip(cases.items(), seen, strict=True):
        assert code == expected, (args, result.stderr[-2000:])
        assert not imported, (args, "tensorflow imported")
    assert "cannot use the MLflow tracking store http://127.0.0.1:1/" in result.stderr
    refusal = "cannot use the Optuna storage postgresql://bn:***@127.0.0.1:1/test (no answer"
    assert refusal in result.stderr and "Secret-31" not in result.stderr  # (stdout: the cases)


def test_examples_copies_the_shipped_study_files_and_never_overwrites(tmp_path, cli):
    from pathlib import Path

    from bnsearch.config import load_study_file

    shipped = Path(__file__).resolve().parent.parent / "studies"
    target = tmp_path / "my-studies"

    first = cli("examples", str(target), cwd=tmp_path)
    again = cli("examples", str(target), cwd=tmp_path)

    assert first.returncode == 0, first.stderr
    names = sorted(p.name for p in shipped.iterdir() if p.suffix in (".toml", ".py"))
    assert sorted(p.name for p in target.iterdir()) == names
    for name in names:
        assert (target / name).read_bytes() == (shipped / name).read_bytes()
    for toml in target.glob("*.toml"):
        load_study_file(toml)  # each one loads where it was copied (paths are relative)
    assert again.returncode == 2
    assert again.stderr.count("bnsearch: error:") == 1 and "already holds" in again.stderr


@pytest.mark.server
def test_the_wheel_carries_the_study_files_the_license_and_py_typed(built_wheel):
    import zipfile
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    wheel = built_wheel
    names = zipfile.ZipFile(wheel).namelist()
    studies = sorted(p.name for p in (root / "studies").iterdir() if p.suffix in (".toml", ".py"))
    data = sorted(n.rsplit("/", 1)[1] for n in names if "/share/bnsearch/studies/" in n)
    assert data == studies
    assert "bnsearch/py.typed" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), names[-10:]
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(wheel).read(metadata).decode()
    assert "License-Expression: MIT" in text and "Provides-Extra: postgres" in text
