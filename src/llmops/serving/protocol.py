"""The OpenAI wire format the server speaks: request bodies (strict pydantic models), OpenAI-style error bodies
and the one-line message a validation error becomes."""

from __future__ import annotations

from typing import Any, Literal

from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError


class ApiError(Exception):
    """A client error the server answers with an OpenAI-style error body and `status`."""

    def __init__(
        self,
        status: int,
        message: str,
        type_: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.param = status, message, type_, code, param


def error_response(
    status: int, message: str, type_: str = "invalid_request_error", code: str | None = None, param: str | None = None
) -> JSONResponse:
    """The OpenAI-style error body `{"error": {message, type, code, param}}` with `status`."""
    return JSONResponse(
        {"error": {"message": message, "type": type_, "code": code, "param": param}}, status_code=status
    )


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")


class FilePart(_Strict):
    """OpenAI's `file` content part: the file's bytes as a `data:` URL (`file_data`) and its name."""

    filename: str | None = None
    file_data: str | None = None
    file_id: str | None = None


class ImageUrl(_Strict):
    url: str


class ContentPart(_Strict):
    """One part of a message's content: `text`, a document (`file`) or an image (`image_url`)."""

    type: str = "text"
    text: str = ""
    file: FilePart | None = None
    image_url: ImageUrl | None = None

    @property
    def is_document(self) -> bool:
        return self.type in ("file", "image_url")


class Message(_Strict):
    role: str
    content: str | list[ContentPart] | None = None

    def text(self) -> str:
        """The message's text parts (documents are read by llmops.serving.documents)."""
        if isinstance(self.content, list):
            return "".join(p.text for p in self.content if p.type == "text")
        return self.content or ""

    def has_documents(self) -> bool:
        return isinstance(self.content, list) and any(p.is_document for p in self.content)


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


class SamplingRequest(_Strict):
    """The fields /v1/chat/completions and /v1/completions share: model, token limits, sampling, stop, stream."""

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


class ChatRequest(SamplingRequest):
    messages: list[Message] = Field(min_length=1)
    response_format: ResponseFormat | None = None


class CompletionRequest(SamplingRequest):
    prompt: str
    response_format: ResponseFormat | None = None


def validation_message(err: ValidationError | RequestValidationError) -> tuple[str, str | None]:
    """(message, param) of a validation error's first problem: `loc: msg` and the dotted location."""
    errors = err.errors()
    if not errors:
        return "invalid request", None
    first = errors[0]
    loc = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
    return (f"{loc}: {first.get('msg', 'invalid value')}" if loc else first.get("msg", "invalid value")), loc or None
