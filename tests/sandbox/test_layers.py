"""The sandbox sits below tasks and evaluation: none of its modules imports them (function-local imports included)."""

from __future__ import annotations

import ast
from pathlib import Path

import llmops.sandbox
import llmops.tasks.codegen

ABOVE = ("tasks", "evaluation", "methods", "pipeline", "cli", "serving", "kfp", "quickstart")


def _imports(path: Path) -> set[str]:
    """Every llmops module `path` imports, wherever in the file the import stands."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("llmops.")}


def test_the_sandbox_imports_nothing_above_it() -> None:
    files = sorted(Path(llmops.sandbox.__file__).parent.glob("*.py"))
    assert len(files) >= 9
    upward = {f"{path.name} -> {name}" for path in files for name in _imports(path)
              if name.split(".")[1] in ABOVE}
    assert upward == set()


def test_codegen_runs_programs_through_the_sandbox_not_evaluation() -> None:
    names = _imports(Path(llmops.tasks.codegen.__file__))
    assert "llmops.sandbox" in names and not any(name.startswith("llmops.evaluation") for name in names)
