"""The documentation: the MkDocs site builds strictly, the README stays short, every measured figure names its
command."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README_MAX_LINES = 150
# docs/results.md: every table has these columns, and every row fills them.
RESULT_COLUMNS = ("figure", "value", "date", "commit", "hardware", "command")


def test_the_docs_site_builds_strictly(tmp_path: Path) -> None:
    # --strict turns every warning into a failure: a broken link or anchor, a page missing from the nav, and the
    # settings hook's error for an unknown section
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    kd = (tmp_path / "site" / "methods" / "kd" / "index.html").read_text(encoding="utf-8")
    assert "<code>kd.temperature</code>" in kd and "<!-- settings:" not in kd  # the hook filled in the table


def test_an_unknown_settings_section_names_the_page_and_the_sections() -> None:
    from mkdocs.exceptions import PluginError

    spec = importlib.util.spec_from_file_location("settings_tables", ROOT / "docs" / "hooks" / "settings_tables.py")
    settings_tables = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(settings_tables)

    class Page:
        class file:
            src_path = "methods/kd.md"

    table = settings_tables.on_page_markdown("# KD\n\n<!-- settings: kd -->\n", Page, None, None)
    assert "| `kd.temperature` | float | `2.0` |" in table
    with pytest.raises(PluginError, match=r"methods/kd\.md: unknown settings section 'kdd'.*use one of peft, training"):
        settings_tables.on_page_markdown("<!-- settings: kdd -->\n", Page, None, None)


def test_the_readme_is_short_and_keeps_its_architecture_section() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; move text into docs/"
    assert "## Architecture" in lines
    architecture = lines[lines.index("## Architecture") :]
    assert any(line.startswith("| layer |") for line in architecture), "the Architecture section keeps its layer table"


def _tables(markdown: str) -> list[tuple[list[str], list[list[str]]]]:
    """Every Markdown table of the text: its header cells and its rows' cells."""
    tables, current = [], None
    for line in markdown.splitlines():
        if not line.startswith("|"):
            current = None
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        if current is None:
            current = (cells, [])
            tables.append(current)
        elif not all(re.fullmatch(r":?-+:?", c) for c in cells):
            current[1].append(cells)
    return tables


def test_every_measured_figure_names_its_date_commit_hardware_and_command() -> None:
    tables = _tables((ROOT / "docs" / "results.md").read_text(encoding="utf-8"))
    assert len(tables) >= 5
    rows = 0
    for header, body in tables:
        assert tuple(header) == RESULT_COLUMNS, f"docs/results.md: a table's columns are {header}"
        for cells in body:
            figure = dict(zip(header, cells))
            assert len(cells) == len(header) and all(figure.values()), f"an empty cell in {cells}"
            assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", figure["date"]), figure
            assert re.fullmatch(r"`[0-9a-f]{7,40}`", figure["commit"]), figure
            assert re.search(r"`[^`]+`", figure["command"]), f"no command (in backticks) for {figure['figure']!r}"
            rows += 1
    assert rows >= 40
