"""The OpenAI-compatible HTTP API over an Engine: /v1/models, /v1/chat/completions (+SSE; PDFs and images as
`file` / `image_url` content parts, see llmops.serving.documents), /v1/completions, /health and /metrics. Client
errors are OpenAI-style bodies with 400/401/404/413/429, never 500."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from llmops.serving import metrics
from llmops.serving.engine import (
    Completion,
    Engine,
    GenRequest,
)
from llmops.serving.protocol import (
    ApiError,
    ChatRequest,
    CompletionRequest,
    error_response,
    validation_message,
)
from llmops.serving.server import (  # noqa: F401 - the limits, re-exported
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_TOKENS_LIMIT,
    RETRY_AFTER_S,
    Server,
)

router = APIRouter()


def server_of(request: Request) -> Server:
    """The Server of the app handling `request`."""
    return request.app.state.server


def usage_of(c: Completion) -> dict[str, int]:
    """The OpenAI `usage` object of a completion."""
    return {
        "prompt_tokens": c.prompt_tokens,
        "completion_tokens": c.completion_tokens,
        "total_tokens": c.prompt_tokens + c.completion_tokens,
    }


@router.get("/health")
async def health(request: Request) -> Any:
    server = server_of(request)
    if server.draining:  # not ready: the load balancer stops sending here
        return JSONResponse(
            {"status": "draining", "model": server.name, "inflight": server.inflight},
            status_code=503,
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )
    return {"status": "ok", "model": server.name, "queue_depth": server.engine.queue_depth()}


@router.get("/metrics")
async def prometheus(request: Request) -> Response:
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    metrics.QUEUE_DEPTH.set(server_of(request).engine.queue_depth())
    return Response(generate_latest(metrics.REGISTRY), media_type=CONTENT_TYPE_LATEST)


@router.get("/v1/models")
async def models(request: Request) -> dict[str, Any]:
    created = int(time.time())
    return {
        "object": "list",
        "data": [
            {"id": n, "object": "model", "created": created, "owned_by": "llmops"} for n in server_of(request).names()
        ],
    }


@router.post("/v1/chat/completions")
async def chat(request: Request) -> Response:
    server = server_of(request)
    req: ChatRequest = await server.body(request, ChatRequest)
    messages = await run_in_threadpool(server.chat_messages, req)
    try:
        prompt_ids = await run_in_threadpool(server.engine.encode_chat, messages)
    except Exception as e:  # noqa: BLE001 - a template that rejects the messages (roles, order)
        raise ApiError(400, f"messages: the chat template rejected them ({e})", param="messages") from None
    gen = await run_in_threadpool(server.gen_request, req, prompt_ids, req.response_format)
    server.start(gen)
    cid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
    if req.stream:
        head = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": req.model or server.name}
        include_usage = bool(req.stream_options and req.stream_options.include_usage)
        return StreamingResponse(
            chat_events(server.engine, gen, head, include_usage),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    c = await server.finish(gen)
    return JSONResponse(
        {
            "id": cid,
            "object": "chat.completion",
            "created": created,
            "model": req.model or server.name,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": c.text},
                    "logprobs": None,
                    "finish_reason": c.finish_reason,
                }
            ],
            "usage": usage_of(c),
        }
    )


def chat_chunk(
    head: dict[str, Any], delta: dict[str, Any], finish: str | None = None, usage: Any = None, choices: bool = True
) -> str:
    """One SSE event of a streamed chat completion: `head` (id, object, created, model) plus the delta."""
    body: dict[str, Any] = {
        **head,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}] if choices else [],
    }
    if usage is not None:
        body["usage"] = usage
    return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"


async def chat_events(engine: Engine, gen: GenRequest, head: dict[str, Any], include_usage: bool) -> AsyncIterator[str]:
    """The SSE events of a started chat request: the role, the deltas, the finish (and usage), then [DONE]."""
    yield chat_chunk(head, {"role": "assistant", "content": ""})
    try:
        async for kind, value in engine.iterate(gen):
            if kind == "delta":
                yield chat_chunk(head, {"content": value})
            else:
                yield chat_chunk(head, {}, value.finish_reason)
                if include_usage:
                    yield chat_chunk(head, {}, usage=usage_of(value), choices=False)
    except Exception as e:  # noqa: BLE001 - headers are sent: report in-band
        err = {
            "error": {
                "message": f"generation failed: {type(e).__name__}",
                "type": "server_error",
                "code": None,
                "param": None,
            }
        }
        yield f"data: {json.dumps(err)}\n\n"
    yield "data: [DONE]\n\n"


@router.post("/v1/completions")
async def completions(request: Request) -> Response:
    server = server_of(request)
    req: CompletionRequest = await server.body(request, CompletionRequest)
    if req.stream:
        raise ApiError(400, "stream is not supported on /v1/completions yet; use /v1/chat/completions", param="stream")
    prompt_ids = await run_in_threadpool(server.engine.encode_text, req.prompt)
    gen = await run_in_threadpool(server.gen_request, req, prompt_ids, req.response_format)
    server.start(gen)
    c = await server.finish(gen)
    return JSONResponse(
        {
            "id": f"cmpl-{uuid.uuid4().hex}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": req.model or server.name,
            "choices": [{"index": 0, "text": c.text, "logprobs": None, "finish_reason": c.finish_reason}],
            "usage": usage_of(c),
        }
    )


async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
    return error_response(exc.status, exc.message, exc.type, exc.code, exc.param)


async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
    message, param = validation_message(exc)
    return error_response(400, message, param=param)


async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
    return error_response(exc.status_code, str(exc.detail), code=code)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    return error_response(500, f"internal error: {type(exc).__name__}", "server_error")


def create_app(
    engine: Engine,
    api_key: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_tokens_limit: int = DEFAULT_MAX_TOKENS_LIMIT,
    served_name: str | None = None,
    default_max_tokens: int = 256,
    default_schema: dict[str, Any] | None = None,
) -> FastAPI:
    """The FastAPI app serving `engine` (as `served_name`); with `api_key`, /v1 routes need `Bearer KEY`.

    With `default_schema` (an IDP model's schema) a request without `response_format` is constrained to it;
    `response_format: {"type": "text"}` opts out.
    """
    server = Server(
        engine,
        served_name or engine.name,
        api_key,
        max_body_bytes,
        max_tokens_limit,
        default_max_tokens,
        default_schema,
    )
    app = FastAPI(title="llmops serve", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.engine = engine
    app.state.server = server
    app.add_exception_handler(ApiError, _api_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected)
    app.middleware("http")(server.observe)
    app.include_router(router)
    return app
