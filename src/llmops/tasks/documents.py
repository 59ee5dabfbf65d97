"""Documents given as a file (a PDF, a scan or photo, a text file) or as the text itself; files are read by the
one document reader, `llmops.data.documents` (local paths, s3://, gs://, http(s)://; text layer, else OCR)."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from llmops.data.documents import DOCUMENT_SUFFIXES, document_text
from llmops.errors import DataError

# A single-line value without spaces ending in one of these suffixes, a URI, or an existing local file names a
# file; anything else is document text.
_FILE_SUFFIXES = DOCUMENT_SUFFIXES | {".json", ".jsonl", ".html", ".htm", ".xml", ".csv", ".tsv"}
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


def _local_file(value: str) -> bool:
    """True when `value` is an existing local file (any suffix)."""
    try:
        return "://" not in value and Path(value).is_file()
    except (OSError, ValueError):
        return False


def read_document(value: str) -> str:
    """The document text when `value` names a file (PDF text layer, OCR for scans and images, text files), else
    `value` itself."""
    candidate = value.strip()
    if not _looks_like_file(candidate) and not (_is_one_line(candidate) and _local_file(candidate)):
        return value
    if not _exists(candidate):
        raise DataError(f"{candidate}: not found (pass an existing file, or the document text itself)")
    return document_text(candidate)
