"""Documents given as a file (a PDF's text layer, a text file) or as the text itself; files are read with
`llmops.data.io` (local paths, s3://, gs://, http(s)://)."""

from __future__ import annotations

import io
from pathlib import Path, PurePosixPath

from llmops.data.io import decode_text, read_bytes
from llmops.errors import DataError

# A single-line value without spaces ending in one of these suffixes, a URI, or an existing local file names a
# file; anything else is document text.
_FILE_SUFFIXES = {".pdf", ".txt", ".text", ".md", ".json", ".jsonl", ".html", ".htm", ".xml", ".csv", ".tsv"}
_MAX_PATH_LENGTH = 4096


def _is_one_line(value: str) -> bool:
    """True for a non-empty single line short enough to be a path."""
    return bool(value) and "\n" not in value and len(value) <= _MAX_PATH_LENGTH


def _looks_like_file(value: str) -> bool:
    """True when `value` names a file: one word that is a URI or ends in a document suffix."""
    # A sentence that merely ends in "receipt.pdf" is text; an existing path with spaces is caught by the caller.
    if not _is_one_line(value) or any(c.isspace() for c in value):
        return False
    scheme, sep, _ = value.partition("://")
    if sep and scheme.isalnum():
        return True
    return PurePosixPath(value).suffix.lower() in _FILE_SUFFIXES


def _exists(value: str) -> bool:
    """True when `value` is an existing local file or remote object."""
    import fsspec

    try:
        fs, path = fsspec.core.url_to_fs(value)
        return bool(fs.isfile(path))
    except (OSError, ValueError, ImportError):
        return False


def _pdf_text(location: str, data: bytes) -> str:
    """The text layer of a PDF, page texts joined by newlines."""
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        pages = [page.extract_text() or "" for page in reader.pages]
    except (PdfReadError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{location}: not a readable PDF ({exc})") from None
    text = "\n".join(page.strip() for page in pages if page.strip())
    if not text:
        raise DataError(f"{location}: no text layer; OCR the PDF first")
    return text


def _local_file(value: str) -> bool:
    """True when `value` is an existing local file (any suffix)."""
    try:
        return "://" not in value and Path(value).is_file()
    except (OSError, ValueError):
        return False


def read_document(value: str) -> str:
    """The document text: a PDF's text layer or a text file's content when `value` names a file, else `value`."""
    candidate = value.strip()
    if not _looks_like_file(candidate) and not (_is_one_line(candidate) and _local_file(candidate)):
        return value
    if not _exists(candidate):
        raise DataError(f"{candidate}: not found (pass an existing file, or the document text itself)")
    data = read_bytes(candidate)
    if candidate.lower().endswith(".pdf") or data[:5] == b"%PDF-":
        return _pdf_text(candidate, data)
    return decode_text(candidate, data)
