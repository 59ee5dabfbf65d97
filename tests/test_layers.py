"""The layers contract: which package may import which, over every import statement (function-local ones too).

    cli -> pipeline / kfp / serving / quickstart -> methods -> evaluation -> tasks -> sandbox / models / tracking
        -> data / config / errors

A module imports only from its own layer or below, and no two modules import each other, directly or through
others. Run it alone with `make layers`. README, "Architecture", describes the layers.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

# Top-level packages and modules of llmops by layer, lowest first.
LAYERS: list[set[str]] = [
    {"errors", "config", "settings", "data", "summary", "environment", "progress", "__init__"},
    {"sandbox", "models", "tracking"},
    {"tasks"},
    {"evaluation"},
    {"methods"},
    {"run_inputs", "run_steps", "pipeline", "training_job", "predict", "kfp", "serving", "quickstart"},
    {"cli"},
]


def _module_name(path: Path, src: Path) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph(src: Path = SRC) -> dict[str, set[str]]:
    """module -> the llmops modules it imports (anywhere in its file), resolved to modules where they are ones."""
    files = {_module_name(p, src): p for p in (src / "llmops").rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names if a.name.split(".")[0] == "llmops")
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                if module.split(".")[0] != "llmops":
                    continue
                for alias in node.names:  # `from llmops.methods import registry` imports the module registry
                    full = f"{module}.{alias.name}"
                    targets.add(full if full in files else module)
        graph[name] = {t for t in targets if t != name and t in files}
    return graph


def layer_of(module: str) -> int:
    top = module.split(".")[1] if "." in module else "__init__"
    for index, names in enumerate(LAYERS):
        if top in names:
            return index
    raise AssertionError(f"{module}: not in any layer of tests/test_layers.py; add its package to LAYERS")


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return sorted(f"{a} -> {b}" for a, targets in graph.items() for b in targets if layer_of(b) > layer_of(a))


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def test_every_module_is_in_a_layer() -> None:
    for module in import_graph():
        layer_of(module)


def test_no_module_imports_from_a_layer_above_it() -> None:
    upward = upward_imports(import_graph())
    assert not upward, "imports from a layer above (see LAYERS):\n  " + "\n  ".join(upward)


def test_no_import_cycles() -> None:
    found = cycles(import_graph())
    assert not found, "modules that import each other:\n  " + "\n  ".join(" <-> ".join(c) for c in found)


def test_the_contract_catches_a_back_edge_and_a_cycle() -> None:
    before_up, before_cycles = upward_imports(import_graph()), cycles(import_graph())
    graph = import_graph()
    graph["llmops.tasks.codegen"].add("llmops.evaluation.generate")  # tasks importing evaluation
    assert sorted(set(upward_imports(graph)) - set(before_up)) == ["llmops.tasks.codegen -> llmops.evaluation.generate"]
    graph = import_graph()
    graph["llmops.data.io"].add("llmops.data.formats")
    graph["llmops.data.formats"].add("llmops.data.io")
    assert ["llmops.data.formats", "llmops.data.io"] in cycles(graph)
    assert ["llmops.data.formats", "llmops.data.io"] not in before_cycles


def test_function_local_imports_count(tmp_path: Path) -> None:
    package = tmp_path / "llmops"
    (package / "low").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "low" / "__init__.py").write_text("")
    (package / "low" / "a.py").write_text("def f():\n    from llmops.high import b\n")
    (package / "high.py").write_text("from .low import a\n")
    assert import_graph(tmp_path) == {"llmops": set(), "llmops.low": set(), "llmops.low.a": {"llmops.high"},
                                      "llmops.high": {"llmops.low.a"}}
    with pytest.raises(AssertionError, match="not in any layer"):
        layer_of("llmops.low.a")
