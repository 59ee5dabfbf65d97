"""One batched `generate` call, row by row: what each request in the batch needs from the shared forward passes.

`BatchState` keeps the rows' grammar matchers and turns a finished row into its Completion; `RowProcessor` (a
logits processor) applies each row's JSON grammar mask and its own temperature / top-p; `RowStopper` (a stopping
criterion) ends each row at its own max_tokens, stop string, grammar completion or cancellation and pushes the
stream deltas. Used by `llmops.serving.engine.Engine`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llmops.evaluation.constrained import sample_filter
from llmops.serving import metrics


@dataclass
class Completion:
    """What a finished request produced."""

    text: str
    finish_reason: str  # "stop" (EOS, stop string or grammar complete) or "length"
    prompt_tokens: int
    completion_tokens: int


def stop_cut(text: str, stops: list[str]) -> tuple[int, bool]:
    """Where the text ends: (index of the first stop string, True), or (len(text), False)."""
    cut = min((i for i in (text.find(s) for s in stops if s) if i >= 0), default=-1)
    return (cut, True) if cut >= 0 else (len(text), False)


def safe_len(text: str, stops: list[str]) -> int:
    """How much of an unfinished text can be streamed: not a trailing partial UTF-8 char, not a stop prefix."""
    end = len(text)
    while end and text[end - 1] == "\ufffd":
        end -= 1
    hold = 0
    for s in stops:
        for k in range(min(len(s) - 1, end), 0, -1):
            if text[:end].endswith(s[:k]):
                hold = max(hold, k)
                break
    return end - hold


class BatchState:
    """Per-row bookkeeping shared by the logits processor and the stopping criterion of one generate call."""

    def __init__(self, engine: Any, batch: list[Any], width: int) -> None:
        self.engine = engine
        self.batch = batch
        self.width = width
        self.matchers: list[Any] = [None] * len(batch)
        self.accepted = [0] * len(batch)  # tokens each row's matcher has accepted
        self.bitmask: Any = None
        if any(r.grammar is not None for r in batch):
            import xgrammar as xgr

            self.matchers = [xgr.GrammarMatcher(r.grammar) if r.grammar is not None else None for r in batch]
            self.bitmask = xgr.allocate_token_bitmask(len(batch), engine.vocab_size)

    def generated(self, row: int, ids: list[int]) -> tuple[list[int], bool]:
        """The row's generated ids before any EOS/padding, and whether it hit EOS."""
        for i, token in enumerate(ids):
            if token in self.engine.eos_ids:
                return ids[:i], True
        return ids, False

    def text(self, ids: list[int]) -> str:
        return self.engine.tokenizer.decode(ids, skip_special_tokens=True)

    def finish(self, row: int, raw: list[int]) -> None:
        req = self.batch[row]
        ids, eos = self.generated(row, raw[: req.max_tokens])
        text = self.text(ids)
        cut, stopped = stop_cut(text, req.stop)
        text = text[:cut]
        matcher = self.matchers[row]
        if matcher is not None and not matcher.is_terminated():
            for token in ids[self.accepted[row] :]:  # the last token is sampled after the processor's last call
                if not matcher.accept_token(token):
                    break
        complete = matcher is not None and (matcher.is_terminated() or matcher.is_completed())
        reason = "stop" if (eos or stopped or complete) else "length"
        if req.stream and len(text) > req.emitted:
            req.push("delta", text[req.emitted :])
            req.emitted = len(text)
        n = min(len(raw), req.max_tokens, len(ids) + (1 if eos else 0))
        req.push("done", Completion(text, reason, len(req.prompt_ids), n))
        metrics.GENERATED_TOKENS.inc(n)
        metrics.PROMPT_TOKENS.inc(len(req.prompt_ids))


class RowProcessor:
    """Grammar mask, then per-row temperature / top-p (greedy rows keep only their best token)."""

    def __init__(self, state: BatchState) -> None:
        self.state = state
        self.step = 0

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        st = self.state
        scores = scores.float()
        if st.bitmask is not None:
            import xgrammar as xgr

            rows = []
            for row, matcher in enumerate(st.matchers):
                if matcher is None or st.batch[row].done:
                    continue
                if self.step > 0 and not matcher.is_terminated():
                    matcher.accept_token(int(input_ids[row, -1]))
                    st.accepted[row] += 1
                if matcher.is_terminated():
                    continue
                matcher.fill_next_token_bitmask(st.bitmask, row)
                rows.append(row)
            if rows:
                xgr.apply_token_bitmask_inplace(
                    scores, st.bitmask.to(scores.device), vocab_size=scores.shape[1], indices=rows
                )
        self.step += 1
        for row, req in enumerate(st.batch):
            scores[row] = sample_filter(scores[row], req.temperature, req.top_p)
        return scores


class RowStopper:
    """Ends each row at its own max_tokens, stop string, grammar completion or cancellation; streams deltas."""

    def __init__(self, state: BatchState) -> None:
        self.state = state

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        st = self.state
        flags = []
        for row, req in enumerate(st.batch):
            if not req.done:
                raw = input_ids[row, st.width :].tolist()
                ids, eos = st.generated(row, raw)
                matcher = st.matchers[row]
                if (
                    eos
                    or len(raw) >= req.max_tokens
                    or req.cancelled
                    or (matcher is not None and matcher.is_terminated())
                ):
                    req.done = True
                if req.stream or req.stop:
                    text = st.text(ids[: req.max_tokens])
                    cut, stopped = stop_cut(text, req.stop)
                    if stopped:
                        req.done = True
                    if req.stream and not req.done:
                        end = safe_len(text[:cut], req.stop)
                        if end > req.emitted:
                            req.push("delta", text[req.emitted : end])
                            req.emitted = end
            flags.append(req.done)
        return torch.tensor(flags, dtype=torch.bool, device=input_ids.device)
