"""tracking/ imports only the layers below it (config, errors), and its modules import each other without a cycle."""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import llmops.tracking

PACKAGE = Path(llmops.tracking.__file__).parent


def _imports(path: Path) -> set[str]:
    """The llmops modules a file imports, function-local imports included."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("llmops"):
            for alias in node.names:  # `from llmops.tracking import registry` imports the submodule
                submodule = node.module == "llmops.tracking" and (PACKAGE / f"{alias.name}.py").is_file()
                found.add(f"{node.module}.{alias.name}" if submodule else node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("llmops"))
    return found


def _graph() -> dict[str, set[str]]:
    return {f"llmops.tracking.{p.stem}".removesuffix(".__init__"): _imports(p) for p in PACKAGE.glob("*.py")}


def test_tracking_imports_only_config_errors_and_itself():
    allowed = ("llmops.config", "llmops.errors", "llmops.tracking")
    upward = {m: sorted(i for i in deps if not i.startswith(allowed)) for m, deps in _graph().items()}
    assert {m: d for m, d in upward.items() if d} == {}


def test_tracking_modules_form_no_cycle():
    graph = {m: {d for d in deps if d.startswith("llmops.tracking")} for m, deps in _graph().items()}
    try:
        TopologicalSorter(graph).prepare()
    except CycleError as e:
        raise AssertionError(f"import cycle in tracking/: {e.args[1][::-1]}") from None


def test_the_gate_and_the_uri_need_no_other_tracking_module():
    graph = _graph()
    assert {d for d in graph["llmops.tracking.gate"] if d.startswith("llmops")} == set()
    assert {d for d in graph["llmops.tracking.uri"] if d.startswith("llmops.tracking")} == set()
