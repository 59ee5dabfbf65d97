"""The serving engine: a loaded model, a bounded request queue and a worker thread that batches requests.

Requests that arrive within `batch_wait_s` of each other (up to `max_batch_size`) run in ONE batched, left-padded
`generate`. Each row keeps its own max_tokens, stop strings, temperature/top_p and JSON grammar: a per-row
stopping criterion ends a row early (the batch runs until every row is done), a per-row logits processor applies
the grammar mask and the sampling settings. Streaming requests share the batch: their text deltas are pushed
from the stopping criterion after every step.
"""

from __future__ import annotations

import asyncio
import copy
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmops.errors import ConfigError, LlmopsError, ModelError
from llmops.evaluation.constrained import CAP_STEPS, JsonConstraint, JsonGrammar
from llmops.evaluation.schema_bounds import MAX_STRING_REPEAT, UNTYPED_AS, narrow_schema
from llmops.serving import metrics
from llmops.serving.rows import BatchState, Completion, RowProcessor, RowStopper


class QueueFullError(LlmopsError):
    """The request queue is full; the API answers 429."""


class RequestError(LlmopsError):
    """A request the engine cannot serve as asked (bad schema, prompt too long); the API answers 400."""

    param: str | None = None
    code: str | None = None


class MaxTokensTooSmallError(RequestError):
    """max_tokens cannot hold even the shortest answer the request's JSON schema allows."""

    param = "max_tokens"
    code = "max_tokens_too_small"


@dataclass
class GenRequest:
    """One request in the queue; `events` receives ("delta", str) for streams and finally ("done", Completion)
    or ("error", Exception), on the asyncio loop that submitted it."""

    prompt_ids: list[int]
    max_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    stop: list[str] = field(default_factory=list)
    grammar: Any = None  # an xgrammar CompiledGrammar
    min_tokens: int = 0  # the fewest tokens an answer to `grammar` takes
    stream: bool = False
    adapter: str | None = None  # a LoRA adapter served beside the base (None: the base model)
    loop: Any = None
    events: Any = None
    cancelled: bool = False
    # Filled by the worker.
    emitted: int = 0
    done: bool = False
    finish_reason: str = "length"
    n_generated: int = 0

    def push(self, kind: str, value: Any) -> None:
        if self.loop is not None and self.events is not None:
            try:
                self.loop.call_soon_threadsafe(self.events.put_nowait, (kind, value))
            except RuntimeError:  # the loop is closed: nobody is listening any more
                pass


class Engine:
    """A model served by a background batching worker. Thread-safe `submit`; results arrive on asyncio queues."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        max_batch_size: int = 8,
        batch_wait_s: float = 0.01,
        max_queue: int = 64,
        json_string_max: int | None = MAX_STRING_REPEAT,
        name: str = "model",
        adapters: dict[str, str] | None = None,
    ) -> None:
        from llmops.evaluation.generate import eos_ids

        if max_batch_size < 1 or max_queue < 1:
            raise ConfigError("serve: max_batch_size and max_queue must be at least 1")
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self.adapters = dict(adapters or {})
        self.max_batch_size = max_batch_size
        self.batch_wait_s = batch_wait_s
        self.json_string_max = json_string_max
        self.eos_ids = eos_ids(model, tokenizer)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_ids[0]
        self.vocab_size = int(getattr(model.config, "vocab_size", len(tokenizer)))
        self.max_positions = getattr(model.config, "max_position_embeddings", None)
        self.folder: str | None = None  # the model folder, when loaded from one
        self.generate_calls = 0  # batched generate calls
        self.batch_sizes: list[int] = []
        self.held = 0  # requests taken off the queue by a paused worker
        self._queue: queue.Queue[GenRequest] = queue.Queue(maxsize=max_queue)
        self._running = threading.Event()
        self._running.set()
        self._closed = False
        self._grammar_lock = threading.Lock()
        self._json: JsonGrammar | None = None
        self._worker = threading.Thread(target=self._loop, name="llmops-serve-worker", daemon=True)
        self._worker.start()

    @classmethod
    def load(cls, model: str, **kwargs: Any) -> Engine:
        """Load a local folder or `models:/NAME@ALIAS` (resolved through the tracking registry)."""
        from llmops.models.builtin import converts_offline
        from llmops.models.loader import load_for_inference
        from llmops.tracking import resolve_model

        if not model.startswith("models:/") and not converts_offline(model) and not Path(model).expanduser().is_dir():
            raise ConfigError(f"serve: model folder '{model}' does not exist")
        path = resolve_model(model)
        mdl, tok = load_for_inference(path)
        adapters = kwargs.get("adapters") or {}
        if adapters:
            mdl = _with_adapters(mdl, adapters)
        kwargs.setdefault("name", model if model.startswith("models:/") else Path(model).resolve().name)
        engine = cls(mdl, tok, **kwargs)
        engine.folder = str(path)
        return engine

    # ----------------------------------------------------------------- requests
    def encode_chat(self, messages: list[dict[str, str]]) -> list[int]:
        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def encode_text(self, prompt: str) -> list[int]:
        return self.tokenizer(prompt, add_special_tokens=False)["input_ids"]

    def grammar(self, kind: str, schema: Any = None) -> Any:
        """A compiled (cached) grammar for response_format json_object / json_schema; RequestError if invalid."""
        return self.constraint(kind, schema).grammar

    def constraint(self, kind: str, schema: Any = None, max_tokens: int | None = None) -> JsonConstraint:
        """The compiled (cached) grammar of a json_object / json_schema response_format, narrowed so that every
        answer is bounded (`schema_bounds`), and its shortest answer's length; RequestError if invalid.

        With `max_tokens`, the bounds the schema leaves open (string lengths, array sizes) are tightened, step by
        step, until the longest possible answer fits in it (every token spells at least one byte), so a greedy
        model that repeats itself still finishes; the schema's own maxLength / maxItems are kept."""
        if kind == "json_object":
            schema = {"type": "object", "additionalProperties": {"type": list(UNTYPED_AS)}}
        if not isinstance(schema, dict):
            raise RequestError("response_format.json_schema.schema must be a JSON object")
        try:
            from jsonschema.validators import validator_for

            validator_for(schema).check_schema(schema)
        except Exception as e:  # noqa: BLE001 - any schema error is the client's
            raise RequestError(f"response_format: invalid JSON schema ({str(e).splitlines()[0]})") from None
        try:
            return self.json_grammar().constraint(schema, max_tokens)
        except ValueError as e:
            raise RequestError(f"response_format: schema not supported ({e})") from None

    def json_grammar(self) -> JsonGrammar:
        """The grammar compiler for this model's tokenizer (built on first use)."""
        with self._grammar_lock:
            if self._json is None:
                self._json = JsonGrammar(self.tokenizer, self.vocab_size, self.eos_ids, self.json_string_max)
            return self._json

    def fewest_tokens(self, text: str) -> int:
        """The fewest tokens that spell `text` (any split a constrained model may pick, not only the tokenizer's)."""
        return self.json_grammar().fewest_tokens(text)

    def check(self, req: GenRequest) -> None:
        if self.max_positions and len(req.prompt_ids) + req.max_tokens > self.max_positions:
            raise RequestError(
                f"prompt ({len(req.prompt_ids)} tokens) + max_tokens ({req.max_tokens}) exceeds "
                f"the model's context length {self.max_positions}"
            )
        if not req.prompt_ids:
            raise RequestError("the prompt is empty")
        if req.max_tokens < req.min_tokens:
            raise MaxTokensTooSmallError(
                f"max_tokens {req.max_tokens} is too small for this response_format: its shortest valid answer "
                f"takes {req.min_tokens} tokens; set max_tokens to at least {req.min_tokens}"
            )

    def submit(self, req: GenRequest) -> None:
        """Queue a request (QueueFullError when the queue is full)."""
        self.check(req)
        if self._closed:
            raise QueueFullError("the server is shutting down")
        try:
            self._queue.put_nowait(req)
        except queue.Full:
            raise QueueFullError("the request queue is full; retry later") from None

    def start(self, req: GenRequest) -> None:
        """Queue a request whose events go to the running asyncio loop (QueueFullError / RequestError now)."""
        req.loop = asyncio.get_running_loop()
        req.events = asyncio.Queue()
        self.submit(req)

    async def iterate(self, req: GenRequest) -> Any:
        """Yield a started request's ("delta", text) events (streams only), then ("done", Completion)."""
        try:
            while True:
                kind, value = await req.events.get()
                if kind == "error":
                    raise value
                yield kind, value
                if kind == "done":
                    return
        finally:
            req.cancelled = True  # a client that went away stops its row at the next step

    async def run(self, req: GenRequest) -> Completion:
        """Start a request and wait for the whole answer."""
        self.start(req)
        async for kind, value in self.iterate(req):
            if kind == "done":
                return value
        raise RuntimeError("no result")  # pragma: no cover

    def queue_depth(self) -> int:
        return self._queue.qsize()

    def pause(self) -> None:
        """Hold the worker before it takes the next batch (tests, maintenance)."""
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def close(self) -> None:
        self._closed = True
        self._running.set()
        try:
            self._queue.put_nowait(None)  # type: ignore[arg-type]
        except queue.Full:
            pass

    # ----------------------------------------------------------------- worker
    def _loop(self) -> None:
        while not self._closed:
            self._running.wait()
            first = self._queue.get()
            if first is None or self._closed:
                break
            self.held = 1
            self._running.wait()  # paused while blocked in get(): hold this request until resumed
            self.held = 0
            batch = [first]
            deadline = time.monotonic() + self.batch_wait_s
            while len(batch) < self.max_batch_size:
                left = deadline - time.monotonic()
                try:
                    nxt = self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._closed = True
                    break
                batch.append(nxt)
            batch = [r for r in batch if not r.cancelled]
            if not batch:
                continue
            try:
                self._generate(batch)
            except Exception as e:  # noqa: BLE001 - every waiting request must get an answer
                for r in batch:
                    r.push("error", e)

    def _generate(self, batch: list[GenRequest]) -> None:
        import torch
        from transformers import LogitsProcessorList, StoppingCriteriaList

        from llmops.evaluation.generate import _left_pad

        input_ids, attention = _left_pad([r.prompt_ids for r in batch], self.pad_id, self.model.device)
        width = input_ids.shape[1]
        sampled = any(r.temperature > 0 for r in batch)
        config = copy.deepcopy(self.model.generation_config)
        config.do_sample = sampled
        config.temperature, config.top_p, config.top_k = 1.0, 1.0, None
        config.max_new_tokens = max(r.max_tokens for r in batch)
        config.eos_token_id = self.eos_ids
        config.pad_token_id = self.pad_id
        state = BatchState(self, batch, width)
        self.generate_calls += 1
        self.batch_sizes.append(len(batch))
        metrics.BATCH_SIZE.observe(len(batch))
        extra = {"adapter_names": [r.adapter or "__base__" for r in batch]} if self.adapters else {}
        with torch.inference_mode():
            out = self.model.generate(
                input_ids=input_ids,
                attention_mask=attention,
                generation_config=config,
                **extra,
                logits_processor=LogitsProcessorList([RowProcessor(state)]),
                stopping_criteria=StoppingCriteriaList([RowStopper(state)]),
            )
        for row in range(len(batch)):
            state.finish(row, out[row, width:].tolist())


def _with_adapters(model: Any, adapters: dict[str, str]) -> Any:
    """The base model with each LoRA adapter loaded under its name; a batch mixes them (peft adapter_names)."""
    from peft import PeftModel

    if isinstance(model, PeftModel):
        raise ConfigError("serve: --adapter needs a full (or merged) base model as MODEL, not an adapter folder")
    peft_model: Any = None
    for name, path in adapters.items():
        try:
            if peft_model is None:
                peft_model = PeftModel.from_pretrained(model, path, adapter_name=name)
            else:
                peft_model.load_adapter(path, adapter_name=name)
        except (OSError, ValueError, RuntimeError) as e:
            raise ConfigError(f"serve: adapter {name}={path} does not fit the base model: {e}") from None
    return peft_model.eval()


__all__ = [
    "CAP_STEPS",
    "MAX_STRING_REPEAT",
    "Completion",
    "Engine",
    "GenRequest",
    "JsonConstraint",
    "MaxTokensTooSmallError",
    "ModelError",
    "QueueFullError",
    "RequestError",
    "narrow_schema",
]
