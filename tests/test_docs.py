"""The documentation as a person meets it: the README's front page, the generated
reference kept equal to the code, and every Python example in README.md and docs/ run."""

from __future__ import annotations

import json
import re
import select
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
# A fenced Python block, also one indented inside a list item (its fence sets the indent).
_PYTHON_BLOCK = re.compile(r"^( *)```python\n(.*?)^\1```", re.DOTALL | re.MULTILINE)


def _pages() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]


def _examples() -> list[tuple[str, str]]:
    found = []
    for page in _pages():
        for number, match in enumerate(_PYTHON_BLOCK.finditer(page.read_text()), start=1):
            code = textwrap.dedent(match.group(2))
            found.append((f"{page.relative_to(ROOT)}#{number}", code))
    return found


def _reference_module():
    sys.path.insert(0, str(DOCS))
    try:
        import _reference
    finally:
        sys.path.remove(str(DOCS))
    return _reference


def test_the_cli_reference_page_is_generated_from_the_command_and_settings_tables():
    from bnsearch.config import SETTINGS, markdown_table

    reference = _reference_module()
    page = reference.PAGE.read_text()
    assert page == reference.render(), "run python docs/_reference.py"
    assert markdown_table() in page
    for item in SETTINGS:
        assert f"`{item.flag}`" in page


def test_the_readme_is_a_front_door_that_starts_with_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    ci = (ROOT / ".ci" / "run").read_text()
    commands = re.findall(r"^python3 -m venv .*$", readme, re.MULTILINE)
    assert commands[:2] == [
        "python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/python -m bnsearch study",
        'python3 -m venv .venv && .venv/bin/pip install -e ".[test]" && .venv/bin/python -m pytest',
    ]
    assert commands[1] in ci
    # The README's first code block is the set-up: nothing a person must read before it.
    first_block = readme.index("```")
    assert readme.index(commands[0]) < readme.index("```", first_block + 3)


def test_every_page_of_the_nav_exists_and_every_page_is_in_the_nav():
    nav = (ROOT / "mkdocs.yml").read_text()
    listed = set(re.findall(r":\s*([\w/.-]+\.md)\s*$", nav, re.MULTILINE))
    pages = {str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md")}
    assert listed == pages


#: What the examples import that costs seconds a process (TensorFlow most): imported once by
#: the runner below, before it forks a process per example.
_WARM = ("tensorflow", "keras", "keras_tuner", "optuna", "mlflow", "bnsearch")

#: The runner: imports _WARM, then for each example asked for on stdin forks a process that
#: runs it as ``python -c CODE`` would (``__main__``, argv ``["-c"]``, in its folder, its own
#: stdout and stderr, an uncaught exception printed and exit 1, atexit handlers run on exit),
#: and answers with its exit status. Fork, not a new interpreter: only imports happened before
#: it, no TensorFlow runtime, so each example starts from what a fresh process has after its
#: imports, without paying them again (nor collecting their garbage again: ``gc.freeze``).
_RUNNER = r"""
import gc, json, os, signal, sys, types
for name in sys.argv[1:]:
    __import__(name)
sys.argv = ["-c"]
gc.freeze()  # what the imports made: left out of each example's garbage collections
for line in sys.stdin:
    job = json.loads(line)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        os.chdir(job["cwd"])
        for fd, path in ((0, os.devnull), (1, job["stdout"]), (2, job["stderr"])):
            os.dup2(os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC), fd)
        signal.alarm(job["timeout"])
        main = types.ModuleType("__main__")
        sys.modules["__main__"] = main
        exec(compile(job["code"], "<string>", "exec"), main.__dict__)
        sys.exit(0)
    _, status = os.waitpid(pid, 0)
    print(json.dumps(os.waitstatus_to_exitcode(status)), flush=True)
"""


@pytest.fixture(scope="module")
def run_example(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """``run(code, cwd)``: the exit status, stdout and stderr of ``python -c code`` run in
    ``cwd`` (by the runner above, in a process of its own)."""
    outputs = tmp_path_factory.mktemp("runner")
    with open(outputs / "runner.stderr", "w") as errors:
        runner = subprocess.Popen(
            [sys.executable, "-c", _RUNNER, *_WARM],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors, text=True,
        )  # fmt: skip
    ran: list[str] = []

    def run(code: str, cwd: Path, timeout: int = 600) -> tuple[int, str, str]:
        ran.append(code)
        out, err = outputs / f"{len(ran)}.stdout", outputs / f"{len(ran)}.stderr"
        job = {"code": code, "cwd": str(cwd), "stdout": str(out), "stderr": str(err)}
        runner.stdin.write(json.dumps({**job, "timeout": timeout}) + "\n")
        runner.stdin.flush()
        ready, _, _ = select.select([runner.stdout], [], [], timeout + 60)
        answer = runner.stdout.readline() if ready else ""
        assert answer, f"the runner ended: {(outputs / 'runner.stderr').read_text()[-3000:]}"
        return json.loads(answer), out.read_text(), err.read_text()

    yield run
    runner.stdin.close()
    runner.wait(timeout=60)


@pytest.mark.trains
@pytest.mark.server
@pytest.mark.parametrize(("where", "code"), _examples(), ids=[w for w, _ in _examples()])
def test_every_python_example_in_the_docs_runs(where, code, tmp_path, run_example):
    returncode, stdout, stderr = run_example(code, tmp_path)
    assert returncode == 0, f"{where} failed:\n{stdout}\n{stderr}"
