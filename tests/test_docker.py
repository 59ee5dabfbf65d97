"""The image (docker/Dockerfile, `make image`): a CUDA base, the package with its GPU/KFP/serving extras, a non-root
user, and the same default tag as kfp.image. Docker itself is not needed: the files are read."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from llmops.config import KfpSettings

ROOT = Path(__file__).resolve().parents[1]


def _project() -> dict:
    """pyproject.toml's [project] table."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _pin(requirements: list[str], name: str) -> str:
    """The `==` version pinned for `name` in a requirement list."""
    (version,) = [r.split("==", 1)[1] for r in requirements if re.split(r"[=<>!~\[ ;]", r, maxsplit=1)[0] == name]
    return version


def _instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    text = re.sub(
        r"\\\n", " ", "\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith("#"))
    )
    return [
        (parts[0].upper(), parts[1] if len(parts) > 1 else "")
        for parts in (line.strip().split(None, 1) for line in text.splitlines() if line.strip())
    ]


def test_dockerfile_cuda_base_package_extras_and_non_root_user() -> None:
    steps = _instructions(ROOT / "docker" / "Dockerfile")
    args = dict(a.split("=", 1) for kind, a in steps if kind == "ARG" and "=" in a)
    base = next(a for kind, a in steps if kind == "FROM")
    base = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], base)
    assert "cuda" in base.lower(), base
    runs = " ".join(a for kind, a in steps if kind == "RUN")
    project = _project()
    torch = _pin(project["dependencies"], "torch")
    assert re.findall(r"pip install torch==(\S+)", runs) == [torch]  # exactly the project's pin
    extras = re.findall(r"pip install '?\.\[([\w,]+)\]'?", runs)
    assert len(extras) == 1, runs
    assert set(extras[0].split(",")) == {"gpu", "kfp", "serve"}
    assert set(extras[0].split(",")) <= set(project["optional-dependencies"])  # extras the package declares
    assert "bubblewrap" in runs
    user = re.search(r"useradd [^&]*--uid (\d+)[^&]*--home-dir (\S+)", runs)
    assert user, runs
    uid, home = user.groups()
    assert [a for kind, a in steps if kind == "USER"][-1] == f"{uid}:{uid}"  # numeric, for runAsNonRoot
    assert uid != "0"
    assert [a for kind, a in steps if kind == "WORKDIR"][-1] == home
    assert not [kind for kind, _ in steps if kind == "ENTRYPOINT"]
    env = " ".join(a for kind, a in steps if kind == "ENV").split()
    for setting in (f"HF_HOME={home}/.cache/huggingface", "PYTHONUNBUFFERED=1", "MLFLOW_DISABLE_TELEMETRY=true"):
        assert setting in env
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", "runs", "mlruns", ".git"} <= set(ignored)


def test_make_image_builds_the_kfp_default_tag() -> None:
    defaults = re.findall(r"^IMAGE \?= (\S+)$", (ROOT / "Makefile").read_text(), flags=re.MULTILINE)
    assert defaults == [KfpSettings().image]
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    env = {k: v for k, v in os.environ.items() if k not in ("IMAGE", "MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    out = subprocess.run(
        ["make", "--no-print-directory", "-n", "image"], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == f"docker build -f docker/Dockerfile -t {KfpSettings().image} ."
