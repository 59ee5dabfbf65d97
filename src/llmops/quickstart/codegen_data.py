"""Synthetic programming tasks (HumanEval-style, with tests) for the offline CodeGen quickstart.

Each task is a function signature and docstring; the answer is the function body. Tasks come from templates in four
classes (arithmetic, strings, lists, conditionals). Held-out tasks use function-name words, string constants and
numbers never seen in training, drawn from the same distributions: every value goes to the training or the held-out
side by a hash of its text.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmops.quickstart.idp_data import _write_jsonl
from llmops.quickstart.values import SplitValues

_ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z")
_VOWELS = ("a", "e", "i", "o", "u")


@dataclass(frozen=True)
class Template:
    """One kind of task: docstring and body patterns over constants {a}, {b}, {w}, and the argument kind."""

    cls: str
    doc: str
    body: str
    arg: str  # "x" (int), "s" (str) or "xs" (list of int)


TEMPLATES: tuple[Template, ...] = (
    Template("arithmetic", "Return x plus {a}.", "return x + {a}", "x"),
    Template("arithmetic", "Return x minus {a}.", "return x - {a}", "x"),
    Template("arithmetic", "Return x multiplied by {a}.", "return x * {a}", "x"),
    Template("arithmetic", "Return the remainder of x divided by {a}.", "return x % {a}", "x"),
    Template("arithmetic", "Return x multiplied by {a}, plus {b}.", "return x * {a} + {b}", "x"),
    Template("strings", "Return s repeated {a} times.", "return s * {a}", "s"),
    Template("strings", "Return s followed by '{w}'.", "return s + '{w}'", "s"),
    Template("strings", "Return '{w}' followed by s.", "return '{w}' + s", "s"),
    Template("strings", "Return the first {a} characters of s.", "return s[:{a}]", "s"),
    Template("strings", "Return True if s contains '{w}'.", "return '{w}' in s", "s"),
    Template("strings", "Return s with every '{w}' removed.", "return s.replace('{w}', '')", "s"),
    Template("strings", "Return the number of times '{w}' occurs in s.", "return s.count('{w}')", "s"),
    Template("lists", "Return the sum of xs plus {a}.", "return sum(xs) + {a}", "xs"),
    Template("lists", "Return the elements of xs greater than {a}.", "return [v for v in xs if v > {a}]", "xs"),
    Template("lists", "Return each element of xs multiplied by {a}.", "return [v * {a} for v in xs]", "xs"),
    Template("lists", "Return how many elements of xs equal {a}.", "return xs.count({a})", "xs"),
    Template("conditionals", "Return {a} if x is even, else {b}.", "return {a} if x % 2 == 0 else {b}", "x"),
    Template("conditionals", "Return the larger of x and {a}.", "return max(x, {a})", "x"),
    Template("conditionals", "Return the smaller of x and {a}.", "return min(x, {a})", "x"),
    Template("conditionals", "Return True if x is greater than {a}.", "return x > {a}", "x"),
)
CLASSES = tuple(sorted({t.cls for t in TEMPLATES}))
_NOUNS = ("price", "score", "total", "count", "label", "value", "item", "name", "code", "size")


@dataclass(frozen=True)
class CodegenDataset:
    """Where a generated CodeGen quickstart dataset lives."""

    root: Path
    train: Path
    eval: Path
    sample_prompt: str
    train_problems: Path | None = None  # the training tasks as HumanEval records with tests (for GRPO, mining)


class _Values(SplitValues):
    """Draws names and constants from the training side or the held-out side of each value's hash split."""

    def word(self) -> str:
        r = self.rng
        return self._draw(lambda: "".join(r.choice(_ONSETS) + r.choice(_VOWELS) for _ in range(r.randint(2, 3))))

    def number(self, low: int = 2, high: int = 99) -> int:
        return int(self._draw(lambda: str(self.rng.randint(low, high))))

    def name(self) -> str:
        return f"{self.word()}_{self.rng.choice(_NOUNS)}"


def _inputs(arg: str, rng: random.Random) -> list[Any]:
    """Test inputs for an argument kind: small, varied, with edge cases."""
    if arg == "x":
        return [0, 1, rng.randint(2, 50), rng.randint(51, 150), -rng.randint(1, 30)]
    if arg == "s":
        letters = "abcdefghijklmnopqrstuvwxyz"
        words = ["".join(rng.choice(letters) for _ in range(rng.randint(1, 9))) for _ in range(3)]
        return ["", *words]
    return [[], [rng.randint(0, 99) for _ in range(rng.randint(1, 6))], [rng.randint(0, 99) for _ in range(5)]]


def _edge_inputs(arg: str, a: int) -> list[Any]:
    """Inputs around the constant `a`, so an answer with a wrong constant fails the tests."""
    if arg == "x":
        return [a - 1, a, a + 1]
    if arg == "s":
        return ["xy" * (a // 2 + 2)]
    return [[a - 1, a, a + 1, a + 2]]


def make_task(template: Template, rng: random.Random, held_out: bool, task_id: str) -> dict[str, Any]:
    """One HumanEval record (prompt, canonical_solution, test, entry_point, class) from a template."""
    values = _Values(rng, held_out)
    consts = {"a": values.number(), "b": values.number(), "w": values.word()}
    name = values.name()
    annotation = {"x": "x: int", "s": "s: str", "xs": "xs: list"}[template.arg]
    prompt = f'def {name}({annotation}):\n    """{template.doc.format(**consts)}"""\n'
    solution = f"    {template.body.format(**consts)}\n"
    namespace: dict[str, Any] = {}
    exec(prompt + solution, namespace)  # trusted: our own template, used to compute the expected values
    inputs = _inputs(template.arg, rng) + _edge_inputs(template.arg, consts["a"])
    if template.arg == "s" and "'{w}'" in template.body:
        inputs += [consts["w"] + "x", f"a{consts['w']}b{consts['w']}"]
    if template.arg == "xs" and "count" in template.body:
        inputs.append([consts["a"], 1, consts["a"]])
    asserts = "".join(f"    assert candidate({value!r}) == {namespace[name](value)!r}\n" for value in inputs)
    return {
        "task_id": task_id,
        "prompt": prompt,
        "canonical_solution": solution,
        "test": f"def check(candidate):\n{asserts}",
        "entry_point": name,
        "class": template.cls,
    }


def generate_codegen_dataset(out_dir: Path, n_train: int, n_eval_per_class: int, seed: int) -> CodegenDataset:
    """Write train.jsonl ({"input","output"}: prompt -> body), train_problems.jsonl (the same tasks as HumanEval
    records with tests: what GRPO and mined pairs judge answers by) and eval.jsonl (HumanEval records, held-out
    values)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    train, problems = [], []
    for i in range(n_train):
        task = make_task(rng.choice(TEMPLATES), rng, held_out=False, task_id=f"train/{i}")
        train.append({"input": task["prompt"], "output": task["canonical_solution"], "class": task["class"]})
        problems.append(task)
    held = random.Random(seed + 1_000_003)
    evals = []
    for cls in CLASSES:
        templates = [t for t in TEMPLATES if t.cls == cls]
        for i in range(n_eval_per_class):
            evals.append(make_task(templates[i % len(templates)], held, held_out=True, task_id=f"{cls}/{i}"))
    _write_jsonl(out_dir / "train.jsonl", train)
    _write_jsonl(out_dir / "eval.jsonl", evals)
    _write_jsonl(out_dir / "train_problems.jsonl", problems)
    sample = make_task(TEMPLATES[4], random.Random(seed + 7), held_out=True, task_id="sample")["prompt"]
    return CodegenDataset(
        out_dir, out_dir / "train.jsonl", out_dir / "eval.jsonl", sample, out_dir / "train_problems.jsonl"
    )


def tokenizer_corpus(dataset: CodegenDataset, build_prompt: Callable[[str], str], limit: int = 3000) -> list[str]:
    """Texts to train the tiny tokenizer on: training prompts and answers (never held-out data)."""
    import json

    texts = []
    with dataset.train.open(encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            if i >= limit:
                break
            record = json.loads(line)
            texts += [build_prompt(record["input"]), record["output"]]
    return texts
