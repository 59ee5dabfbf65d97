"""Prompts that fit the context: a document longer than what training or inference allows is cut at its end, with
one clear warning naming the document, its length, the limit and what was kept. Never silently.

The document is the last user message's content (IDP prompts end with it); its tail is dropped, so the instruction
and the first pages stay, and a line saying how much was cut is appended for the model to see.
"""

from __future__ import annotations

import sys
from typing import Any

from llmops.data.documents import page_marker

CUT_MARK = "\n[... document cut here: too long for the context ...]"


def _last_user(messages: list[dict[str, Any]]) -> int | None:
    for i in range(len(messages) - 1, -1, -1):
        if messages[i].get("role") == "user" and isinstance(messages[i].get("content"), str):
            return i
    return None


def _pages(text: str) -> int:
    """The number of pages in a document's text (page-marker lines + 1)."""
    count, number = 1, 2
    while f"\n{page_marker(number)}\n" in text or text.startswith(page_marker(number)):
        count, number = number, number + 1
    return count


def shorten_messages(
    tokenizer: Any, messages: list[dict[str, Any]], length: int, limit: int, what: str
) -> list[dict[str, Any]]:
    """`messages` whose rendering (`length` tokens) must shrink to `limit`: the last user message cut at its end,
    and a warning on stderr naming `what`; unchanged when nothing can be cut."""
    index = _last_user(messages)
    if index is None:
        return messages
    content = messages[index]["content"]
    ids = tokenizer(content, add_special_tokens=False)["input_ids"]
    mark = len(tokenizer(CUT_MARK, add_special_tokens=False)["input_ids"])
    keep = max(0, len(ids) - (length - limit) - mark - 2)  # a little slack: re-encoding may merge differently
    kept_text = tokenizer.decode(ids[:keep], skip_special_tokens=True)
    pages = _pages(content)
    page_note = f", pages 1-{_pages(kept_text)} of {pages}" if pages > 1 else ""
    print(
        f"warning: {what}: {length:,} tokens, over the limit of {limit:,}; kept the first {keep:,} of its "
        f"{len(ids):,} document tokens{page_note} (raise training.max_len or split the document)",
        file=sys.stderr,
        flush=True,
    )
    out = [dict(m) for m in messages]
    out[index]["content"] = kept_text + CUT_MARK
    return out
