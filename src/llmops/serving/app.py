"""The OpenAI-compatible HTTP API over an Engine: /v1/models, /v1/chat/completions (+SSE), /v1/completions,
/health and /metrics. Client errors are OpenAI-style bodies with 400/401/404/413/429, never 500."""

from __future__ import annotations

import hmac
import json
import time
import uuid
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from llmops.serving import metrics
from llmops.serving.engine import (
    Completion,
    Engine,
    GenRequest,
    JsonConstraint,
    QueueFullError,
    RequestError,
)

DEFAULT_MAX_BODY_BYTES = 1 << 20
DEFAULT_MAX_TOKENS_LIMIT = 2048


class ApiError(Exception):
    def __init__(self, status: int, message: str, type_: str = "invalid_request_error", code: str | None = None,
                 param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.param = status, message, type_, code, param


def error_response(status: int, message: str, type_: str = "invalid_request_error", code: str | None = None,
                   param: str | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": type_, "code": code, "param": param}},
                        status_code=status)


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")


class TextPart(_Strict):
    type: str = "text"
    text: str = ""


class Message(_Strict):
    role: str
    content: str | list[TextPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(p.text for p in self.content if p.type == "text")
        return self.content or ""


class JsonSchemaSpec(_Strict):
    name: str = "output"
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None
    description: str | None = None


class ResponseFormat(_Strict):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaSpec | None = None


class StreamOptions(_Strict):
    include_usage: bool = False


class _Sampling(_Strict):
    model: str | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float = Field(default=1.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    n: int = Field(default=1, ge=1, le=1)
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    seed: int | None = None

    def stops(self) -> list[str]:
        stops = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        if len(stops) > 4:
            raise ApiError(400, "stop: at most 4 sequences", param="stop")
        return [s for s in stops if s]


class ChatRequest(_Sampling):
    messages: list[Message] = Field(min_length=1)
    response_format: ResponseFormat | None = None


class CompletionRequest(_Sampling):
    prompt: str
    response_format: ResponseFormat | None = None


def _validation_message(err: ValidationError | RequestValidationError) -> tuple[str, str | None]:
    errors = err.errors()
    if not errors:
        return "invalid request", None
    first = errors[0]
    loc = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
    return (f"{loc}: {first.get('msg', 'invalid value')}" if loc else first.get("msg", "invalid value")), loc or None


def create_app(engine: Engine, api_key: str | None = None, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
               max_tokens_limit: int = DEFAULT_MAX_TOKENS_LIMIT, served_name: str | None = None,
               default_max_tokens: int = 256, default_schema: dict[str, Any] | None = None) -> FastAPI:
    """The FastAPI app serving `engine` (as `served_name`); with `api_key`, /v1 routes need `Bearer KEY`.

    With `default_schema` (an IDP model's schema) a request without `response_format` is constrained to it;
    `response_format: {"type": "text"}` opts out.
    """
    name = served_name or engine.name
    app = FastAPI(title="llmops serve", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.engine = engine
    key_bytes = api_key.encode() if api_key else None

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.message, exc.type, exc.code, exc.param)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        message, param = _validation_message(exc)
        return error_response(400, message, param=param)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        return error_response(exc.status_code, str(exc.detail), code=code)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        return error_response(500, f"internal error: {type(exc).__name__}", "server_error")

    @app.middleware("http")
    async def _observe(request: Request, call_next: Any) -> Response:
        path = request.url.path
        endpoint = path if path in _ENDPOINTS else "other"
        start = time.perf_counter()
        if path.startswith("/v1"):
            if key_bytes is not None:
                auth = request.headers.get("authorization", "")
                given = auth[7:].strip().encode() if auth[:7].lower() == "bearer " else b""
                if not hmac.compare_digest(given, key_bytes):
                    response: Response = error_response(
                        401, "missing or invalid API key (send 'Authorization: Bearer KEY')",
                        code="invalid_api_key")
                    _record(endpoint, response.status_code, start)
                    return response
            length = request.headers.get("content-length")
            if length is not None and (not length.isdigit() or int(length) > max_body_bytes):
                response = error_response(413, f"request body larger than {max_body_bytes} bytes",
                                          code="request_too_large")
                _record(endpoint, response.status_code, start)
                return response
        try:
            response = await call_next(request)
        except Exception as exc:  # noqa: BLE001
            response = error_response(500, f"internal error: {type(exc).__name__}", "server_error")
        _record(endpoint, response.status_code, start)
        return response

    async def _body(request: Request, model: type[_Sampling]) -> Any:
        raw = b""
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > max_body_bytes:
                raise ApiError(413, f"request body larger than {max_body_bytes} bytes", code="request_too_large")
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as e:
            raise ApiError(400, f"malformed JSON body ({e})", code="invalid_json") from None
        if not isinstance(data, dict):
            raise ApiError(400, "the body must be a JSON object", code="invalid_json")
        try:
            parsed = model.model_validate(data)
        except ValidationError as e:
            message, param = _validation_message(e)
            raise ApiError(400, message, param=param) from None
        if parsed.model is not None and parsed.model not in _names():
            raise ApiError(404, f"model '{parsed.model}' is not served here (served: {', '.join(_names())})",
                           code="model_not_found", param="model")
        return parsed

    def _names() -> list[str]:
        return [name, *engine.adapters]

    def _max_tokens(req: _Sampling) -> int:
        value = req.max_completion_tokens or req.max_tokens or min(default_max_tokens, max_tokens_limit)
        if value > max_tokens_limit:
            raise ApiError(400, f"max_tokens {value} is over this server's limit {max_tokens_limit}",
                           param="max_tokens", code="max_tokens_too_large")
        return value

    def _constraint(fmt: ResponseFormat | None, max_tokens: int) -> JsonConstraint | None:
        if fmt is None and default_schema is not None:
            return engine.constraint("json_schema", default_schema, max_tokens)
        if fmt is None or fmt.type == "text":
            return None
        if fmt.type == "json_object":
            return engine.constraint("json_object", max_tokens=max_tokens)
        if fmt.json_schema is None or fmt.json_schema.schema_ is None:
            raise ApiError(400, "response_format.json_schema.schema is required", param="response_format")
        return engine.constraint("json_schema", fmt.json_schema.schema_, max_tokens)

    def _gen_request(req: _Sampling, prompt_ids: list[int], fmt: ResponseFormat | None) -> GenRequest:
        try:
            adapter = req.model if req.model in engine.adapters else None
            max_tokens = _max_tokens(req)
            constraint = _constraint(fmt, max_tokens)
            return GenRequest(prompt_ids=prompt_ids, max_tokens=max_tokens, temperature=req.temperature,
                              top_p=req.top_p, stop=req.stops(), stream=req.stream, adapter=adapter,
                              grammar=constraint.grammar if constraint else None,
                              min_tokens=constraint.min_tokens if constraint else 0)
        except RequestError as e:
            raise ApiError(400, str(e), code=e.code, param=e.param) from None

    def _start(gen: GenRequest) -> None:
        try:
            engine.start(gen)
        except QueueFullError as e:
            raise ApiError(429, str(e), "rate_limit_error", code="queue_full") from None
        except RequestError as e:
            raise ApiError(400, str(e), code=e.code, param=e.param) from None
        metrics.QUEUE_DEPTH.set(engine.queue_depth())

    def _usage(c: Completion) -> dict[str, int]:
        return {"prompt_tokens": c.prompt_tokens, "completion_tokens": c.completion_tokens,
                "total_tokens": c.prompt_tokens + c.completion_tokens}

    async def _finish(gen: GenRequest) -> Completion:
        async for kind, value in engine.iterate(gen):
            if kind == "done":
                return value
        raise ApiError(500, "no result", "server_error")  # pragma: no cover

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": name, "queue_depth": engine.queue_depth()}

    @app.get("/metrics")
    async def prometheus() -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        metrics.QUEUE_DEPTH.set(engine.queue_depth())
        return Response(generate_latest(metrics.REGISTRY), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        created = int(time.time())
        return {"object": "list", "data": [{"id": n, "object": "model", "created": created, "owned_by": "llmops"}
                                           for n in _names()]}

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        from starlette.concurrency import run_in_threadpool

        req: ChatRequest = await _body(request, ChatRequest)
        messages = [{"role": m.role, "content": m.text()} for m in req.messages]
        try:
            prompt_ids = await run_in_threadpool(engine.encode_chat, messages)
        except Exception as e:  # noqa: BLE001 - a template that rejects the messages (roles, order)
            raise ApiError(400, f"messages: the chat template rejected them ({e})", param="messages") from None
        gen = await run_in_threadpool(_gen_request, req, prompt_ids, req.response_format)
        _start(gen)
        cid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        if not req.stream:
            c = await _finish(gen)
            return JSONResponse({
                "id": cid, "object": "chat.completion", "created": created, "model": req.model or name,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": c.text},
                             "logprobs": None, "finish_reason": c.finish_reason}],
                "usage": _usage(c)})
        include_usage = bool(req.stream_options and req.stream_options.include_usage)

        def chunk(delta: dict[str, Any], finish: str | None = None, usage: Any = None,
                  choices: bool = True) -> str:
            body: dict[str, Any] = {"id": cid, "object": "chat.completion.chunk", "created": created,
                                    "model": req.model or name,
                                    "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                                 "finish_reason": finish}] if choices else []}
            if usage is not None:
                body["usage"] = usage
            return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

        async def events() -> Any:
            yield chunk({"role": "assistant", "content": ""})
            try:
                async for kind, value in engine.iterate(gen):
                    if kind == "delta":
                        yield chunk({"content": value})
                    else:
                        yield chunk({}, value.finish_reason)
                        if include_usage:
                            yield chunk({}, usage=_usage(value), choices=False)
            except Exception as e:  # noqa: BLE001 - headers are sent: report in-band
                err = {"error": {"message": f"generation failed: {type(e).__name__}", "type": "server_error",
                                 "code": None, "param": None}}
                yield f"data: {json.dumps(err)}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        from starlette.concurrency import run_in_threadpool

        req: CompletionRequest = await _body(request, CompletionRequest)
        if req.stream:
            raise ApiError(400, "stream is not supported on /v1/completions yet; use /v1/chat/completions",
                           param="stream")
        prompt_ids = await run_in_threadpool(engine.encode_text, req.prompt)
        gen = await run_in_threadpool(_gen_request, req, prompt_ids, req.response_format)
        _start(gen)
        c = await _finish(gen)
        return JSONResponse({
            "id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": int(time.time()),
            "model": req.model or name,
            "choices": [{"index": 0, "text": c.text, "logprobs": None, "finish_reason": c.finish_reason}],
            "usage": _usage(c)})

    return app


_ENDPOINTS = {"/health", "/metrics", "/v1/models", "/v1/chat/completions", "/v1/completions"}


def _record(endpoint: str, status: int, start: float) -> None:
    metrics.REQUESTS.labels(endpoint=endpoint, status=str(status)).inc()
    metrics.LATENCY.labels(endpoint=endpoint).observe(time.perf_counter() - start)
