"""Decoding under a JSON schema: every answer parses and validates by construction, and ends when the JSON closes.

`JsonGrammar` holds xgrammar's compiler for one tokenizer. `constraint(schema, max_tokens)` narrows the schema so
that every answer is bounded (`schema_bounds`), compiles it, and knows its shortest and longest answer; with
`max_tokens` the bounds the schema leaves open (string lengths, array sizes) are tightened step by step until the
longest possible answer fits (the schema's own maxLength / maxItems are kept). `GrammarProcessor` is the logits
processor one batched `generate` call uses: each row keeps its own matcher, the mask is applied before any sampling
(temperature and top-p are applied after it, here, so that sampling never sees a token the grammar forbids), and
once the JSON is complete the only token left is end-of-sequence. The serving engine (`llmops.serving.engine`)
uses the same class for its `response_format` requests.

`close_answer` finishes an answer that reached its token limit still open (an evaluation's limit comes from the
gold answers, well under the schema's bound): it walks the grammar from where the model stopped, choosing at each
step the allowed token that closes the most (quotes and brackets, then null, 0, a comma), without the model, so
the answer keeps what was generated and still validates.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any

from llmops.evaluation.schema_bounds import MAX_ITEMS, MAX_STRING_REPEAT, narrow_schema
from llmops.evaluation.schema_size import max_json_bytes, min_json
from llmops.evaluation.stops import eos_ids

# Tighter (string_max, items_max) bounds tried, in order, when a schema's longest answer does not fit max_tokens.
CAP_STEPS = ((64, 8), (32, 4), (16, 4), (8, 2))


@dataclass(frozen=True)
class JsonConstraint:
    """A compiled grammar, the fewest tokens any answer to it takes and an upper bound of the most."""

    grammar: Any  # an xgrammar CompiledGrammar
    min_tokens: int
    max_tokens: int | None  # None: unbounded (a recursive schema)


class JsonGrammar:
    """xgrammar's compiler for one tokenizer, with a cache of compiled schemas (thread-safe)."""

    def __init__(
        self,
        tokenizer: Any,
        vocab_size: int,
        stop_ids: list[int],
        string_max: int | None = MAX_STRING_REPEAT,
        items_max: int = MAX_ITEMS,
    ) -> None:
        import xgrammar as xgr

        self.tokenizer = tokenizer
        self.vocab_size = vocab_size
        self.string_max = string_max
        self.items_max = items_max
        info = xgr.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab_size, stop_token_ids=stop_ids)
        special = set(info.special_token_ids) | set(stop_ids)
        self._token_bytes = {b for i, b in enumerate(info.decoded_vocab) if b and i not in special}
        self._longest_token = max(map(len, self._token_bytes), default=0)
        self._compiler = xgr.GrammarCompiler(info)
        self._lock = threading.Lock()
        self._cache: dict[str, JsonConstraint] = {}

    @classmethod
    def for_model(cls, model: Any, tokenizer: Any, **kwargs: Any) -> JsonGrammar:
        """The grammar compiler for a loaded model's vocabulary and end-of-sequence ids."""
        vocab = int(getattr(model.config, "vocab_size", None) or len(tokenizer))
        return cls(tokenizer, vocab, eos_ids(model, tokenizer), **kwargs)

    def caps(self, schema: dict[str, Any], max_tokens: int | None) -> tuple[int | None, int]:
        """The loosest (string_max, items_max) whose longest answer fits in `max_tokens` (None: the defaults)."""
        first = (self.string_max, self.items_max)
        steps = [first] + [c for c in CAP_STEPS if self.string_max is None or c[0] < self.string_max]
        if max_tokens is None:
            return first
        for caps in steps:
            try:
                longest = max_json_bytes(narrow_schema(schema, *caps))
            except ValueError:
                return first  # reported as unsupported by the compile step
            if longest is not None and longest <= max_tokens:
                return caps
        return steps[-1]

    def constraint(self, schema: dict[str, Any], max_tokens: int | None = None) -> JsonConstraint:
        """The compiled (cached) grammar of `schema`, narrowed to bounded answers (tightened to fit `max_tokens`
        when given); ValueError when xgrammar cannot compile it."""
        caps = self.caps(schema, max_tokens)
        key = json.dumps([schema, caps], sort_keys=True)
        with self._lock:
            if key in self._cache:
                return self._cache[key]
            narrowed = narrow_schema(schema, *caps)
            try:
                compiled = self._compiler.compile_json_schema(narrowed, any_whitespace=False)
            except Exception as e:  # noqa: BLE001 - xgrammar raises plain RuntimeErrors
                raise ValueError(str(e).splitlines()[0] if str(e) else type(e).__name__) from None
            shortest = min_json(narrowed)
            longest = max_json_bytes(narrowed)
            found = JsonConstraint(
                compiled,
                self.fewest_tokens(shortest) if shortest is not None else 0,
                None if longest is None else longest + 1,
            )  # + the end-of-sequence token
            if len(self._cache) > 256:
                self._cache.clear()
            self._cache[key] = found
            return found

    def fewest_tokens(self, text: str) -> int:
        """The fewest tokens that spell `text` (any split a constrained model may pick, not only the tokenizer's)."""
        data = text.encode()
        longest = self._longest_token
        best = [0] + [len(data) + 1] * len(data)
        for end in range(1, len(data) + 1):
            for start in range(max(0, end - longest), end):
                if best[start] + 1 < best[end] and data[start:end] in self._token_bytes:
                    best[end] = best[start] + 1
        if best[-1] > len(data):  # not spelt by the vocabulary: fall back on the tokenizer
            return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        return best[-1]


def sample_filter(logits: Any, temperature: float, top_p: float) -> Any:
    """Logits of one row scaled by the temperature, the tail past top-p removed (greedy: only the best token)."""
    import torch

    if temperature <= 0:
        best = int(logits.argmax())
        keep = logits[best].clone()
        logits.fill_(-float("inf"))
        logits[best] = keep
        return logits
    logits = logits / temperature
    if top_p < 1.0:
        ordered, index = torch.sort(logits, descending=True)
        probs = torch.softmax(ordered, dim=-1)
        drop = probs.cumsum(-1) - probs > top_p  # keep the token that crosses top_p
        logits[index[drop]] = -float("inf")
    return logits


class GrammarProcessor:
    """A logits processor for one batched `generate`: each row's grammar mask (rows without a grammar are left
    free), then each row's temperature / top-p. Pass `do_sample` with temperature 1 and top-p 1 to `generate` when
    sampling, so that its own warpers do not act before the mask."""

    def __init__(
        self,
        grammars: list[Any],
        vocab_size: int,
        temperatures: list[float] | None = None,
        top_ps: list[float] | None = None,
    ) -> None:
        import xgrammar as xgr

        self.matchers = [xgr.GrammarMatcher(g) if g is not None else None for g in grammars]
        self.bitmask = xgr.allocate_token_bitmask(len(grammars), vocab_size) if any(grammars) else None
        self.temperatures = temperatures
        self.top_ps = top_ps
        self.step = 0

    def accept_last(self, input_ids: Any) -> None:
        """Feed each row's matcher the token the previous step chose."""
        if self.step == 0:
            return
        for row, matcher in enumerate(self.matchers):
            if matcher is not None and not matcher.is_terminated():
                matcher.accept_token(int(input_ids[row, -1]))

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        scores = scores.float()
        self.accept_last(input_ids)
        self.step += 1
        if self.bitmask is not None:
            import xgrammar as xgr

            rows = []
            for row, matcher in enumerate(self.matchers):
                if matcher is not None and not matcher.is_terminated():
                    matcher.fill_next_token_bitmask(self.bitmask, row)
                    rows.append(row)
            if rows:
                xgr.apply_token_bitmask_inplace(
                    scores, self.bitmask.to(scores.device), vocab_size=scores.shape[1], indices=rows
                )
        if self.temperatures is not None:
            top_ps = self.top_ps or [1.0] * len(self.temperatures)
            for row, (temperature, top_p) in enumerate(zip(self.temperatures, top_ps)):
                scores[row] = sample_filter(scores[row], temperature, top_p)
        return scores


_CLOSERS = frozenset(b'"}]')
_RANKS: dict[int, tuple[Any, Any]] = {}  # id(compiled grammar) -> (the grammar, kept alive; its vocabulary's ranks)
_RANKS_LOCK = threading.Lock()
MAX_CLOSING_TOKENS = 4096


def _closing_rank(grammar: Any) -> Any:
    """Per token of a vocabulary, how well it closes an open JSON answer (lower first): end-of-sequence, tokens
    made only of quotes and closing brackets (longer first), null, 0 and [], a comma, then anything else (shorter
    first)."""
    import numpy as np

    with _RANKS_LOCK:
        if id(grammar) in _RANKS:
            return _RANKS[id(grammar)][1]
        info = grammar.tokenizer_info
        ranks = np.full(info.vocab_size, 10_000, dtype=np.int64)
        for token, text in enumerate(info.decoded_vocab[: info.vocab_size]):
            if not text:
                continue
            if set(text) <= _CLOSERS:
                ranks[token] = 10 - min(len(text), 8)
            elif text in (b"null", b"0", b"[]", b"{}"):
                ranks[token] = 20
            elif text == b",":
                ranks[token] = 30
            else:
                ranks[token] = 100 + min(len(text), 50)
        ranks[list(info.stop_token_ids)] = 0
        if len(_RANKS) > 16:
            _RANKS.clear()
        _RANKS[id(grammar)] = (grammar, ranks)
        return ranks


def close_answer(grammar: Any, ids: list[int]) -> list[int]:
    """The tokens that complete an answer the model left open under `grammar` (a CompiledGrammar) after `ids`
    (its generated tokens, no end-of-sequence): [] when it is already complete. Deterministic; bounded schemas
    always close (at most MAX_CLOSING_TOKENS)."""
    import numpy as np
    import xgrammar as xgr

    matcher = xgr.GrammarMatcher(grammar)
    for token in ids:
        if not matcher.accept_token(int(token)):
            return []  # not an answer of this grammar: nothing to close
    ranks = _closing_rank(grammar)
    stops = set(int(t) for t in np.flatnonzero(ranks == 0))
    bitmask = xgr.allocate_token_bitmask(1, len(ranks))
    added: list[int] = []
    while not matcher.is_terminated() and len(added) < MAX_CLOSING_TOKENS:
        matcher.fill_next_token_bitmask(bitmask, 0)
        words = bitmask[0].numpy().astype(np.uint32)
        allowed = np.unpackbits(words.view(np.uint8), bitorder="little")[: len(ranks)].astype(bool)
        if not allowed.any():
            break
        token = int(np.where(allowed, ranks, np.iinfo(np.int64).max).argmin())
        if token in stops:
            break
        matcher.accept_token(token)
        added.append(token)
    return added
