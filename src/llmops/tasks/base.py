"""The Task protocol: what the pipeline, the methods and evaluation need from a task family (IDP, CodeGen); the
families are listed in llmops.tasks.registry."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

DEFAULT_CLASS = "default"


@runtime_checkable
class Task(Protocol):
    """A task turns an eval example into prompt messages and scores raw model outputs against references.

    Eval examples are dicts `{"id", "prompt": [messages], "reference", "class"}`; a task may also build the
    prompt from its own fields (e.g. IDP's `document`). `score` returns flat float metrics, overall and per
    class as `"<class>/<metric>"`.
    """

    name: str
    flow_type: str  # its `flow_type` value (llmops.tasks.registry)
    input_key: str  # the run config key of its sample input: "document" (IDP), "prompt" (CodeGen)
    judged_by_tests: bool  # evaluation runs each problem's tests, so eval records must carry them
    schema: Any  # the JSON Schema answers are decoded under (IDP), else None

    @classmethod
    def from_config(cls, cfg: Any) -> Task:
        """The task of a run config."""
        ...

    def build_prompt(self, text: str) -> str:
        """The user message for a document or a problem (the same in training and evaluation)."""
        ...

    def format_answer(self, value: Any) -> str:
        """The assistant answer for a gold value (the training completion)."""
        ...

    def eval_examples(self, records: list, source: str = "data") -> list[dict[str, Any]]:
        """Gold records as eval examples {"id", "prompt", "reference", "class"} (also what judges training answers)."""
        ...

    def rewards(self, answers: list[str], references: list[Any], **kwargs: Any) -> list[float]:
        """One reward per answer against its reference (GRPO, mined pairs); `reward_kwargs` gives the keywords."""
        ...

    @classmethod
    def reward_kwargs(cls, grpo: Any) -> dict[str, Any]:
        """The keyword arguments of `rewards` from a run's `grpo` settings."""
        ...

    def sample_answer(self, source: str, answer: str) -> str:
        """The answer to a run's sample input, as a user reads it."""
        ...

    def build_messages(self, example: dict[str, Any]) -> list[dict[str, str]]:
        """The chat messages the model answers for `example`."""
        ...

    def reference(self, example: dict[str, Any]) -> Any:
        """The gold answer of `example`, in the form `score` compares against."""
        ...

    def parse(self, text: str) -> Any:
        """The answer extracted from raw model output, or None when there is none."""
        ...

    def score(self, predictions: list[str], references: list[Any], classes: list[str]) -> dict[str, float]:
        """Flat metrics over the dataset: overall keys and `<class>/<key>` per class."""
        ...

    def example_scores(self, prediction: str, reference: Any) -> dict[str, Any]:
        """Per-example columns for the predictions table (parsed answer, per-example score, validity)."""
        ...

    def per_field(self, predictions: list[str], references: list[Any]) -> dict[str, float]:
        """A breakdown of the main metric by field, for plots; {} where the task has none."""
        ...


def class_of(example: dict[str, Any]) -> str:
    """The example's class, or the default class when it has none."""
    value = example.get("class")
    return str(value) if value not in (None, "") else DEFAULT_CLASS


def per_class(classes: list[str]) -> dict[str, list[int]]:
    """Indices of the examples of each class, classes in sorted order."""
    groups: dict[str, list[int]] = {}
    for i, cls in enumerate(classes):
        groups.setdefault(cls, []).append(i)
    return dict(sorted(groups.items()))
