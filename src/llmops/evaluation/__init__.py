"""Evaluation: batched greedy generation, task scoring, prediction tables and file-level IDP metrics."""

from llmops.evaluation.eval_set import EvalReport, evaluate
from llmops.evaluation.report import eval_idp_files, write_jsonl

__all__ = ["EvalReport", "eval_idp_files", "evaluate", "write_jsonl"]
