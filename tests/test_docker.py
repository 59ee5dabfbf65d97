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


def _instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", "\n".join(line for line in path.read_text().splitlines()
                                          if not line.lstrip().startswith("#")))
    return [(parts[0].upper(), parts[1] if len(parts) > 1 else "")
            for parts in (line.strip().split(None, 1) for line in text.splitlines() if line.strip())]


def test_dockerfile_cuda_base_package_extras_and_non_root_user() -> None:
    steps = _instructions(ROOT / "docker" / "Dockerfile")
    args = dict(a.split("=", 1) for kind, a in steps if kind == "ARG" and "=" in a)
    base = next(a for kind, a in steps if kind == "FROM")
    base = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], base)
    assert "cuda" in base.lower(), base
    runs = " ".join(a for kind, a in steps if kind == "RUN")
    assert re.search(r"pip install torch==2\.13\.0\b", runs)  # the project's torch pin
    assert re.search(r"pip install '?\.\[gpu,kfp,serve\]'?", runs), runs
    assert "bubblewrap" in runs
    users = [a for kind, a in steps if kind == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), users
    assert re.search(r"useradd [^&]*--uid 1000\b", runs)
    assert [a for kind, a in steps if kind == "WORKDIR"][-1] == "/home/llmops"
    assert not [kind for kind, _ in steps if kind == "ENTRYPOINT"]
    env = " ".join(a for kind, a in steps if kind == "ENV")
    for setting in ("HF_HOME=/home/llmops/.cache/huggingface", "PYTHONUNBUFFERED=1", "MLFLOW_DISABLE_TELEMETRY=true"):
        assert setting in env
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", "runs", "mlruns", ".git"} <= set(ignored)


def test_make_image_builds_the_kfp_default_tag() -> None:
    defaults = re.findall(r"^IMAGE \?= (\S+)$", (ROOT / "Makefile").read_text(), flags=re.MULTILINE)
    assert defaults == [KfpSettings().image]
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    env = {k: v for k, v in os.environ.items() if k not in ("IMAGE", "MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    out = subprocess.run(["make", "--no-print-directory", "-n", "image"], cwd=ROOT, env=env, capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == f"docker build -f docker/Dockerfile -t {KfpSettings().image} ."
