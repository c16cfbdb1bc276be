"""The documentation as a person meets it: the README's front page, the generated
reference kept equal to the code, and every Python example in README.md and docs/ run."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
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


@pytest.mark.trains
@pytest.mark.server
@pytest.mark.parametrize(("where", "code"), _examples(), ids=[w for w, _ in _examples()])
def test_every_python_example_in_the_docs_runs(where, code, tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, f"{where} failed:\n{result.stdout}\n{result.stderr}"
