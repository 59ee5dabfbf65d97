"""Documents in chat requests: PDFs and images sent as OpenAI content parts, read by the one document reader.

A message may carry a document the way OpenAI's API takes one:

- `{"type": "file", "file": {"filename": "invoice.pdf", "file_data": "data:application/pdf;base64,..."}}`
- `{"type": "image_url", "image_url": {"url": "data:image/png;base64,..."}}` (a photo or scan)

The server reads it with `llmops.data.documents.document_text` (text layer, OCR for scans and images), the reader
training and evaluation used. A user message made of documents only, sent to a model with a schema (the request's
`response_format` schema, else the IDP model's own), becomes the prompt the model was trained on: the task's
instruction, the fields and the document. Otherwise each document's text stands where its part was. The server
fetches nothing: a document is sent inline, never as a URL or a file id.
"""

from __future__ import annotations

import base64
import binascii
import mimetypes
from typing import Any

from llmops.data.documents import document_text
from llmops.errors import DataError
from llmops.serving.protocol import ApiError, ContentPart, Message

_MIME_SUFFIXES = {
    "application/pdf": ".pdf",
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/jpg": ".jpg",
    "image/tiff": ".tif",
    "text/plain": ".txt",
}


def _decode(data_url: str, param: str) -> tuple[str, bytes]:
    """(mime type, bytes) of a base64 `data:` URL."""
    if not data_url.startswith("data:"):
        raise ApiError(
            400,
            f"{param}: send the document inline as a base64 data: URL (data:application/pdf;base64,"
            "...); this server fetches no URLs",
            param=param,
        )
    head, sep, payload = data_url[5:].partition(",")
    if not sep or not head.endswith(";base64"):
        raise ApiError(400, f"{param}: expected data:<mime type>;base64,<data>", param=param)
    try:
        return head[: -len(";base64")].lower(), base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, f"{param}: the data: URL is not valid base64", param=param) from None


def part_document(part: ContentPart, param: str) -> tuple[str, bytes]:
    """(a file name, the bytes) of a `file` or `image_url` part."""
    if part.type == "file":
        if part.file is None or not part.file.file_data:
            hint = " (file ids are not supported)" if part.file is not None and part.file.file_id else ""
            raise ApiError(400, f"{param}.file.file_data is required{hint}", param=f"{param}.file")
        mime, data = _decode(part.file.file_data, f"{param}.file.file_data")
        name = part.file.filename or "document" + _MIME_SUFFIXES.get(mime, mimetypes.guess_extension(mime) or "")
        return name, data
    if part.image_url is None:
        raise ApiError(400, f"{param}.image_url.url is required", param=f"{param}.image_url")
    mime, data = _decode(part.image_url.url, f"{param}.image_url.url")
    return "image" + _MIME_SUFFIXES.get(mime, ".png"), data


def read_part(part: ContentPart, param: str) -> str:
    """The text of one document part; a document nothing can be read from is a 400 naming the part."""
    name, data = part_document(part, param)
    try:
        return document_text(name, data)
    except DataError as e:
        raise ApiError(400, f"{param}: {e}", param=param, code="unreadable_document") from None


def message_text(message: Message, index: int, prompt_for: Any = None) -> str:
    """The text a message stands for. `prompt_for(document)`, when given, builds the task prompt of a message that
    holds documents and no text of its own (an IDP extraction request)."""
    if not message.has_documents():
        return message.text()
    parts: list[ContentPart] = message.content  # type: ignore[assignment]
    texts = []
    for k, part in enumerate(parts):
        if part.is_document:
            texts.append(read_part(part, f"messages.{index}.content.{k}"))
        elif part.type == "text" and part.text.strip():
            texts.append(part.text)
    only_documents = not any(p.type == "text" and p.text.strip() for p in parts)
    if only_documents and prompt_for is not None:
        return prompt_for("\n\n".join(texts))
    return "\n\n".join(texts)
