"""Prompt-completion chat examples tokenized for training: the loss covers the answer and ends on end-of-turn.

Chat templates write something after the end-of-turn token (ChatML's `<|im_end|>` is followed by a newline). A label
after it would teach the model to go on past the end of its turn, and would leave the end-of-turn token as not the
last thing it learns to say, so the answer is cut right after its last end-of-turn token (the tokenizer's EOS), and
the EOS is appended when the template writes none.
"""

from __future__ import annotations

from typing import Any

from llmops.errors import DataError


def _ids(tokenizer: Any, messages: list[dict], **kwargs: Any) -> list[int]:
    return list(tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True, **kwargs)["input_ids"])


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def tokenize_example(tokenizer: Any, prompt: list[dict], completion: list[dict]) -> dict[str, list[int]]:
    """`input_ids` of prompt + answer and `completion_mask` (1 on the answer), the answer ending with EOS."""
    prompt_ids = _ids(tokenizer, prompt, add_generation_prompt=True)
    full = _ids(tokenizer, prompt + completion)
    start = _common_prefix(prompt_ids, full)
    answer = full[start:]
    eos = tokenizer.eos_token_id
    if eos in answer:
        answer = answer[: len(answer) - answer[::-1].index(eos)]  # up to and including the last EOS
    else:
        answer = [*answer, eos]
    return {"input_ids": full[:start] + answer, "completion_mask": [0] * start + [1] * len(answer)}


def tokenized_dataset(examples: list[dict], tokenizer: Any, max_len: int | None = None) -> Any:
    """A `datasets.Dataset` of tokenized examples that TRL's SFTTrainer takes as already processed. An example
    longer than `max_len` keeps its whole answer: its document is cut at the end, with a warning naming it."""
    from datasets import Dataset

    from llmops.evaluation.context import shorten_messages

    if not examples:
        raise DataError("training: no training examples; check the training data file")
    rows = []
    for i, ex in enumerate(examples):
        if not isinstance(ex.get("prompt"), list) or not isinstance(ex.get("completion"), list):
            raise DataError(f"training example {i}: expected 'prompt' and 'completion' message lists")
        row = tokenize_example(tokenizer, ex["prompt"], ex["completion"])
        if max_len and len(row["input_ids"]) > max_len:
            what = f"training document {ex.get('name') or i + 1!r} (training.max_len)"
            prompt = shorten_messages(tokenizer, ex["prompt"], len(row["input_ids"]), max_len, what)
            row = tokenize_example(tokenizer, prompt, ex["completion"])
        rows.append(row)
    return Dataset.from_list(rows)


def template_ends_with_eos(tokenizer: Any, example: dict) -> bool:
    """Whether the rendered completion (the tokens after the prompt) contains the EOS token."""

    def ids(messages: list[dict], **kwargs: Any) -> list[int]:
        return tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True, **kwargs)["input_ids"]

    prompt_len = len(ids(example["prompt"], add_generation_prompt=True))
    return tokenizer.eos_token_id in ids(example["prompt"] + example["completion"])[prompt_len:]


def append_eos(completion: list[dict], tokenizer: Any) -> list[dict]:
    last = dict(completion[-1])
    last["content"] = str(last.get("content", "")) + tokenizer.eos_token
    return [*completion[:-1], last]
