"""The Task protocol: what the evaluation runner needs from a task family (IDP, CodeGen)."""

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
