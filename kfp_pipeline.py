"""The original project's entry point, kept working: compile the llmops Kubeflow pipeline and submit it.

    python kfp_pipeline.py --student Qwen/Qwen2.5-3B-Instruct --data s3://bucket/train.jsonl --flow_type IDP \\
        --train_type SFT --epochs 3 --eval_data s3://bucket/eval.json --val_per_class 20 --host http://KFP:8888

takes every flag of `llmops run` (the seed's flags, `--set key=value`, a YAML config first). `--compile-only PATH`
only writes the KFP v2 YAML to PATH; otherwise the pipeline is uploaded and a run started on `--host` (or $KFP_HOST).
Same as `llmops kfp compile --output PATH ...` and `llmops kfp submit ...`.
"""

from __future__ import annotations

import os
import sys


def _argv(args: list[str]) -> list[str]:
    """The `llmops kfp ...` command line for the seed's arguments."""
    args = list(args)
    for i, arg in enumerate(args):
        if arg == "--compile-only" or arg.startswith("--compile-only="):
            path = arg.split("=", 1)[1] if "=" in arg else (args[i + 1] if i + 1 < len(args) else "")
            del args[i:i + (1 if "=" in arg else 2)]
            if not path:
                return ["kfp", "compile", *args, "--output", ""]  # compile's own error names the missing path
            return ["kfp", "compile", *args, "--output", path]
    if "--host" not in args and not any(a.startswith("--host=") for a in args) and os.environ.get("KFP_HOST"):
        args += ["--host", os.environ["KFP_HOST"]]
    return ["kfp", "submit", *args]


def main(args: list[str] | None = None) -> int:
    from llmops.cli import app

    try:
        app(args=_argv(sys.argv[1:] if args is None else args), prog_name="kfp_pipeline.py")
    except SystemExit as e:
        return int(e.code or 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
