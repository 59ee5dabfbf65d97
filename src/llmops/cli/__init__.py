"""The `llmops` command line: parses, builds a RunConfig, calls one function. Heavy imports stay lazy.

One module per command group (run/train, quickstart, evaluate, data, serve, kfp, deploy); the seed flags come from
one table (seed_flags.py) and every command body runs inside one error guard (common.py).
"""

from llmops.cli.app import app, main

__all__ = ["app", "main"]
