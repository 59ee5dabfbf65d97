"""What the routes of the HTTP API share (`Server`): the engine, the served names, the request limits, the API key,
the in-flight count for draining, request metrics, and turning a validated body into an engine request."""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from pydantic import ValidationError

from llmops.errors import LlmopsError
from llmops.serving import metrics
from llmops.serving.documents import message_text
from llmops.serving.engine import (
    Completion,
    Engine,
    GenRequest,
    JsonConstraint,
    QueueFullError,
    RequestError,
)
from llmops.serving.protocol import (
    ApiError,
    ChatRequest,
    ResponseFormat,
    SamplingRequest,
    error_response,
    validation_message,
)
from llmops.tasks.idp import IDPTask

DEFAULT_MAX_BODY_BYTES = 16 << 20  # room for a few pages of scans sent inline (base64)
RETRY_AFTER_S = 2
DEFAULT_MAX_TOKENS_LIMIT = 2048
_ENDPOINTS = {"/health", "/metrics", "/v1/models", "/v1/chat/completions", "/v1/completions"}


class Server:
    """What the routes share: the engine, the names it is served as, the request limits and the API key."""

    def __init__(
        self,
        engine: Engine,
        name: str,
        api_key: str | None,
        max_body_bytes: int,
        max_tokens_limit: int,
        default_max_tokens: int,
        default_schema: dict[str, Any] | None,
    ) -> None:
        self.engine, self.name = engine, name
        self.key_bytes = api_key.encode() if api_key else None
        self.max_body_bytes, self.max_tokens_limit = max_body_bytes, max_tokens_limit
        self.default_max_tokens, self.default_schema = default_max_tokens, default_schema
        self.draining = False  # SIGTERM: new /v1 requests get 503 + Retry-After, /health says not ready
        self.inflight = 0  # /v1 requests not answered yet, streams until their last event

    def names(self) -> list[str]:
        """The base model's served name, then the adapters' names."""
        return [self.name, *self.engine.adapters]

    async def observe(self, request: Request, call_next: Any) -> Response:
        """Middleware: the API key and body-size checks on /v1, and the request count and latency of every call."""
        path = request.url.path
        endpoint = path if path in _ENDPOINTS else "other"
        start = time.perf_counter()
        if not path.startswith("/v1"):
            response = await call_next(request)
            _record(endpoint, response.status_code, start)
            return response
        rejected = self.precheck(request)
        if rejected is not None:
            _record(endpoint, rejected.status_code, start)
            return rejected
        self.inflight += 1
        try:
            response = await call_next(request)
        except Exception as exc:  # noqa: BLE001
            response = error_response(500, f"internal error: {type(exc).__name__}", "server_error")
        _record(endpoint, response.status_code, start)
        body = getattr(response, "body_iterator", None)
        if body is None:
            self.inflight -= 1
            return response

        async def counted() -> AsyncIterator[Any]:
            try:
                async for chunk in body:
                    yield chunk
            finally:  # sent, failed or cancelled by the client
                self.inflight -= 1

        response.body_iterator = counted()
        return response

    def precheck(self, request: Request) -> Response | None:
        """The 503 of a draining server, the 401 of a missing or wrong API key, or the 413 of a declared body over
        the limit; None if none."""
        if self.draining:
            response = error_response(
                503,
                "the server is shutting down; retry on another replica",
                "server_error",
                code="server_shutting_down",
            )
            response.headers["Retry-After"] = str(RETRY_AFTER_S)
            return response
        if self.key_bytes is not None:
            auth = request.headers.get("authorization", "")
            given = auth[7:].strip().encode() if auth[:7].lower() == "bearer " else b""
            if not hmac.compare_digest(given, self.key_bytes):
                return error_response(
                    401, "missing or invalid API key (send 'Authorization: Bearer KEY')", code="invalid_api_key"
                )
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body_bytes):
            return error_response(
                413, f"request body larger than {self.max_body_bytes} bytes", code="request_too_large"
            )
        return None

    async def body(self, request: Request, model: type[SamplingRequest]) -> Any:
        """The request body read (up to the size limit) and validated as `model`, naming a served model."""
        raw = b""
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > self.max_body_bytes:
                raise ApiError(413, f"request body larger than {self.max_body_bytes} bytes", code="request_too_large")
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as e:
            raise ApiError(400, f"malformed JSON body ({e})", code="invalid_json") from None
        if not isinstance(data, dict):
            raise ApiError(400, "the body must be a JSON object", code="invalid_json")
        try:
            parsed = model.model_validate(data)
        except ValidationError as e:
            message, param = validation_message(e)
            raise ApiError(400, message, param=param) from None
        if parsed.model is not None and parsed.model not in self.names():
            raise ApiError(
                404,
                f"model '{parsed.model}' is not served here (served: {', '.join(self.names())})",
                code="model_not_found",
                param="model",
            )
        return parsed

    def max_tokens(self, req: SamplingRequest) -> int:
        """The request's token budget (its own or the default), at most the server's limit."""
        value = req.max_completion_tokens or req.max_tokens or min(self.default_max_tokens, self.max_tokens_limit)
        if value > self.max_tokens_limit:
            raise ApiError(
                400,
                f"max_tokens {value} is over this server's limit {self.max_tokens_limit}",
                param="max_tokens",
                code="max_tokens_too_large",
            )
        return value

    def constraint(self, fmt: ResponseFormat | None, max_tokens: int) -> JsonConstraint | None:
        """The JSON constraint `response_format` asks for (the default schema when it is absent), or None."""
        if fmt is None and self.default_schema is not None:
            return self.engine.constraint("json_schema", self.default_schema, max_tokens)
        if fmt is None or fmt.type == "text":
            return None
        if fmt.type == "json_object":
            return self.engine.constraint("json_object", max_tokens=max_tokens)
        if fmt.json_schema is None or fmt.json_schema.schema_ is None:
            raise ApiError(400, "response_format.json_schema.schema is required", param="response_format")
        return self.engine.constraint("json_schema", fmt.json_schema.schema_, max_tokens)

    def chat_messages(self, req: ChatRequest) -> list[dict[str, str]]:
        """The request's messages as chat-template input, documents read (llmops.serving.documents): a user
        message of documents only, under a schema, becomes the IDP prompt the model was trained on."""
        fmt = req.response_format
        schema = fmt.json_schema.schema_ if fmt is not None and fmt.json_schema is not None else None
        if fmt is None:
            schema = self.default_schema

        def prompt_for(document: str) -> str:  # built only for a message of documents only
            try:
                return IDPTask(schema).build_prompt(document)
            except LlmopsError as e:
                raise ApiError(400, f"response_format.json_schema.schema: {e}", param="response_format") from None

        builder = prompt_for if schema is not None else None
        return [
            {"role": m.role, "content": message_text(m, i, builder if m.role == "user" else None)}
            for i, m in enumerate(req.messages)
        ]

    def gen_request(self, req: SamplingRequest, prompt_ids: list[int], fmt: ResponseFormat | None) -> GenRequest:
        """The engine request for a validated body and its prompt tokens."""
        try:
            adapter = req.model if req.model in self.engine.adapters else None
            max_tokens = self.max_tokens(req)
            constraint = self.constraint(fmt, max_tokens)
            return GenRequest(
                prompt_ids=prompt_ids,
                max_tokens=max_tokens,
                temperature=req.temperature,
                top_p=req.top_p,
                stop=req.stops(),
                stream=req.stream,
                adapter=adapter,
                grammar=constraint.grammar if constraint else None,
                min_tokens=constraint.min_tokens if constraint else 0,
            )
        except RequestError as e:
            raise ApiError(400, str(e), code=e.code, param=e.param) from None

    def start(self, gen: GenRequest) -> None:
        """Queue `gen` on the engine: a full queue is a 429, a request the engine refuses a 400."""
        try:
            self.engine.start(gen)
        except QueueFullError as e:
            raise ApiError(429, str(e), "rate_limit_error", code="queue_full") from None
        except RequestError as e:
            raise ApiError(400, str(e), code=e.code, param=e.param) from None
        metrics.QUEUE_DEPTH.set(self.engine.queue_depth())

    async def finish(self, gen: GenRequest) -> Completion:
        """The completion of a started request."""
        async for kind, value in self.engine.iterate(gen):
            if kind == "done":
                return value
        raise ApiError(500, "no result", "server_error")  # pragma: no cover


def _record(endpoint: str, status: int, start: float) -> None:
    metrics.REQUESTS.labels(endpoint=endpoint, status=str(status)).inc()
    metrics.LATENCY.labels(endpoint=endpoint).observe(time.perf_counter() - start)
