"""The layers contract, checked by import-linter over every import statement (function-local and TYPE_CHECKING
ones too); the contracts live in pyproject.toml (`[tool.importlinter]`):

    cli -> pipeline / kfp / serving / quickstart -> methods -> evaluation -> tasks -> sandbox / models / tracking
        -> data / config / errors

A module imports only from its own layer or below; sandbox, models and tracking know nothing of each other; the
server and the quickstarts are independent; no two modules of a package import each other, directly or through
others; every top-level module is in a layer. Run it alone with `make layers`. README, "Architecture", describes
the layers. Each test that breaks a contract does so in a copy of the package, never in the source tree.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")


def lint(root: Path) -> subprocess.CompletedProcess:
    """lint-imports on the package under root/src with root/pyproject.toml's contracts."""
    env = {**os.environ, "PYTHONPATH": str(root / "src")}
    return subprocess.run(
        [str(LINT), "--no-cache", "--no-logo"], cwd=root, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """A copy of the package and its contracts to break."""
    shutil.copytree(ROOT / "src" / "llmops", tmp_path / "src" / "llmops", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def _append(root: Path, module: str, line: str) -> None:
    path = root / "src" / (module.replace(".", "/") + ".py")
    path.write_text(path.read_text(encoding="utf-8") + "\n" + line + "\n", encoding="utf-8")


def test_the_package_keeps_every_contract() -> None:
    proc = lint(ROOT)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "4 kept, 0 broken" in proc.stdout


def test_an_upward_import_and_a_cycle_break_the_contracts(copy: Path) -> None:
    _append(copy, "llmops.tasks.codegen", "from llmops.evaluation import generate as _up  # noqa")
    _append(copy, "llmops.data.io", "from llmops.data import formats as _cycle  # noqa")
    _append(copy, "llmops.data.formats", "from llmops.data import io as _back  # noqa")
    proc = lint(copy)
    assert proc.returncode != 0
    assert "llmops.tasks is not allowed to import llmops.evaluation" in proc.stdout
    assert "llmops.tasks.codegen -> llmops.evaluation.generate" in proc.stdout
    assert "No cycles are allowed in llmops.data" in proc.stdout


def test_function_local_imports_and_siblings_that_must_stay_apart_count(copy: Path) -> None:
    _append(copy, "llmops.models.device", "def _f():\n    from llmops.tracking import uri  # noqa: F401")
    _append(copy, "llmops.data.io", "def _g():\n    from llmops.methods import registry  # noqa: F401")
    proc = lint(copy)
    assert proc.returncode != 0
    assert "llmops.models is not allowed to import llmops.tracking" in proc.stdout
    assert "llmops.data is not allowed to import llmops.methods" in proc.stdout


def test_a_new_top_level_module_must_be_given_a_layer(copy: Path) -> None:
    (copy / "src" / "llmops" / "newthing.py").write_text("X = 1\n")
    proc = lint(copy)
    assert proc.returncode != 0 and "llmops.newthing" in proc.stdout
