"""Read JSON Lines / JSON records, text and bytes through fsspec (local, s3://, gs://, http(s)://).

The project's only readers of such files. Every problem is one `FILE:LINE: what is wrong; what to do` line
(`FILE: ...` for the whole file); records files ending in .gz are gzip-decompressed first.
"""

from __future__ import annotations

import copy
import gzip
import json
import zlib
from dataclasses import dataclass, field
from typing import Any

from llmops.errors import DataError

# Fail fast on an unreachable endpoint: botocore and s3fs would otherwise retry for minutes.
_S3_OPTIONS: dict[str, Any] = {
    "skip_instance_cache": True,
    "config_kwargs": {
        "connect_timeout": 3,
        "read_timeout": 30,
        "retries": {"max_attempts": 2, "mode": "standard"},
    },
}
_S3_RETRIES = 2
_CONTAINER_KEYS = ("data", "records")


@dataclass
class ScanResult:
    """Records read from one file and every problem found, as (line, message); line 0 is the whole file."""

    name: str
    records: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    problems: list[tuple[int, str]] = field(default_factory=list)

    def problem_lines(self) -> list[str]:
        """The problems as `FILE:LINE: what is wrong` lines (`FILE: what` for the whole file)."""
        return [format_problem(self.name, line, msg) for line, msg in self.problems]


def format_problem(name: str, line: int, message: str) -> str:
    """One `FILE:LINE: message` line; `FILE: message` when the line is 0."""
    return f"{name}:{line}: {message}" if line else f"{name}: {message}"


def _storage_options(location: str) -> dict[str, Any]:
    protocol = location.split("://", 1)[0].lower() if "://" in location else "file"
    if protocol in ("s3", "s3a"):
        return copy.deepcopy(_S3_OPTIONS)
    if protocol in ("http", "https"):
        import aiohttp

        return {"client_kwargs": {"timeout": aiohttp.ClientTimeout(total=120, sock_connect=5)}}
    return {}


def _filesystem(location: str) -> tuple[Any, str]:
    import fsspec

    try:
        fs, path = fsspec.core.url_to_fs(location, **_storage_options(location))
    except ImportError as err:
        protocol = location.split("://", 1)[0]
        raise DataError(f"{location}: reading {protocol}:// needs an extra package: {err}") from err
    except ValueError as err:
        raise DataError(f"{location}: not a readable location: {err}") from err
    if hasattr(fs, "retries"):
        fs.retries = _S3_RETRIES
    return fs, path


def _access_error(location: str, err: BaseException) -> DataError:
    """Turn a storage exception into one clear DataError line."""
    kind = type(err).__name__
    text = str(err) or kind
    if isinstance(err, FileNotFoundError):
        detail = " (the bucket does not exist)" if "bucket" in text.lower() else ""
        return DataError(f"{location}: not found{detail}")
    if isinstance(err, IsADirectoryError):
        return DataError(f"{location}: is a directory, expected a file")
    if isinstance(err, PermissionError):
        return DataError(f"{location}: access denied ({text}); check the credentials and permissions")
    if kind in ("NoCredentialsError", "PartialCredentialsError"):
        return DataError(
            f"{location}: no credentials for object storage ({text}); "
            "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or a profile)"
        )
    if kind in ("EndpointConnectionError", "ConnectTimeoutError", "ConnectionClosedError") or isinstance(
        err, (ConnectionError, TimeoutError)
    ):
        hint = "AWS_ENDPOINT_URL and the network" if location.lower().startswith("s3") else "the URL and the network"
        return DataError(f"{location}: cannot reach the storage endpoint ({text}); check {hint}")
    if "ClientConnector" in kind or "ServerTimeout" in kind:
        return DataError(f"{location}: cannot reach the server ({text})")
    return DataError(f"{location}: cannot be read ({kind}: {text})")


def read_bytes(location: str) -> bytes:
    """The whole content of `location` as bytes; DataError with one clear line when it cannot be read."""
    fs, path = _filesystem(location)
    try:
        return fs.cat_file(path)
    except DataError:
        raise
    except Exception as err:  # storage back-ends raise many unrelated types; all mean "cannot read"
        raise _access_error(location, err) from err


def read_text(location: str) -> str:
    """The content of `location` decoded as UTF-8."""
    return decode_text(location, read_bytes(location))


def decode_text(location: str, data: bytes) -> str:
    """`data` read from `location` decoded as UTF-8 (a byte order mark dropped); DataError naming the line."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise DataError(
            format_problem(location, line, f"not valid UTF-8 (byte 0x{data[err.start]:02x}); save the file as UTF-8")
        ) from err


def exists(location: str) -> bool:
    """Whether `location` exists; DataError when the storage itself cannot be reached."""
    fs, path = _filesystem(location)
    try:
        return bool(fs.exists(path))
    except Exception as err:  # see read_bytes
        raise _access_error(location, err) from err


def _records_bytes(location: str) -> bytes:
    """The bytes of a records file, gzip-decompressed when its name ends in .gz."""
    data = read_bytes(location)
    if not location.lower().endswith(".gz"):
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(
            f"{location}: not a readable gzip file ({err}); compress it again with gzip, or drop "
            "the .gz from its name if it is not compressed"
        ) from err


def scan_records(location: str, empty_ok: bool = False) -> ScanResult:
    """Read every record of a JSONL / JSON file, collecting problems instead of stopping at the first.

    An empty file is a problem unless `empty_ok` (then it simply has no records).
    """
    result = ScanResult(name=location)
    data = _records_bytes(location)
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if not data.strip():
        if not empty_ok:
            result.problems.append((0, "the file is empty; expected JSON Lines records, one object per line"))
        return result
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        _scan_lines(data, result)
        return result
    if not _scan_document(text, location, result):
        _scan_lines(data, result)
    if not result.records and not result.problems:
        result.problems.append((0, "no records found"))
    return result


def read_records(location: str) -> list[tuple[int, dict[str, Any]]]:
    """Records of a JSONL / JSON file as (1-based line, record); DataError listing every problem."""
    result = scan_records(location)
    raise_problems(location, result.problem_lines())
    return result.records


def raise_problems(location: str, lines: list[str]) -> None:
    """Raise one DataError for the `FILE:LINE: ...` problems found in `location` (the first in its message)."""
    if lines:
        count = f"{len(lines)} problem{'s' if len(lines) > 1 else ''}"
        summary = lines[0] if len(lines) == 1 else f"{location}: {count} found, first: {lines[0]}"
        raise DataError(summary, lines)


def _scan_lines(data: bytes, result: ScanResult) -> None:
    """JSON Lines: one object per non-blank line."""
    for number, raw in enumerate(data.split(b"\n"), start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            msg = f"not valid UTF-8 (byte 0x{raw[err.start]:02x} at column {err.start + 1}); save the file as UTF-8"
            result.problems.append((number, msg))
            continue
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as err:
            result.problems.append((number, f"not valid JSON: {err.msg} at column {err.colno}"))
            continue
        _add_record(result, number, value)


def _add_record(result: ScanResult, line: int, value: Any) -> None:
    if isinstance(value, dict):
        result.records.append((line, value))
    else:
        result.problems.append((line, f"a record must be a JSON object, got {_json_type(value)}"))


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


def _scan_document(text: str, location: str, result: ScanResult) -> bool:
    """A whole-file JSON document (array, {"data": [...]}, or one object); False when the file is JSON Lines."""
    stripped = text.lstrip()
    is_json_file = location.lower().rstrip("/").removesuffix(".gz").endswith(".json")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        if _first_line_parses(stripped) or not (is_json_file or stripped.startswith("[")):
            return False
        result.problems.append((err.lineno, f"not valid JSON: {err.msg} at column {err.colno}"))
        return True
    start = len(text) - len(stripped)
    if isinstance(value, list):
        _add_items(result, text, start, value)
    elif isinstance(value, dict) and _container_key(value):
        key = _container_key(value)
        _add_items(result, text, _member_start(text, start, key), value[key])
    else:
        _add_record(result, text.count("\n", 0, start) + 1, value)
    return True


def _first_line_parses(text: str) -> bool:
    try:
        json.loads(text.split("\n", 1)[0])
    except json.JSONDecodeError:
        return False
    return True


def _container_key(value: dict[str, Any]) -> str | None:
    for key in _CONTAINER_KEYS:
        if isinstance(value.get(key), list):
            return key
    return None


def _add_items(result: ScanResult, text: str, array_start: int, items: list[Any]) -> None:
    """Add each array element with the line where it starts (the index + 1 if positions cannot be found)."""
    lines = _element_lines(text, array_start, len(items))
    for index, item in enumerate(items):
        _add_record(result, lines[index] if lines else index + 1, item)


def _element_lines(text: str, pos: int, count: int) -> list[int] | None:
    """1-based line where each element of the (already valid) JSON array at `pos` starts."""
    decoder = json.JSONDecoder()
    lines: list[int] = []
    pos = _skip_ws(text, pos)
    if pos >= len(text) or text[pos] != "[":
        return None
    pos += 1
    while len(lines) < count:
        pos = _skip_ws(text, pos)
        lines.append(text.count("\n", 0, pos) + 1)
        _, pos = decoder.raw_decode(text, pos)
        pos = _skip_ws(text, pos)
        if text[pos] == ",":
            pos += 1
    return lines


def _member_start(text: str, pos: int, key: str) -> int:
    """Position of the value of the top-level member `key` of the (valid) JSON object at `pos`."""
    decoder = json.JSONDecoder()
    pos = _skip_ws(text, pos) + 1
    while True:
        name, pos = decoder.raw_decode(text, _skip_ws(text, pos))
        pos = _skip_ws(text, _skip_ws(text, pos) + 1)
        if name == key:
            return pos
        _, pos = decoder.raw_decode(text, pos)
        pos = _skip_ws(text, pos) + 1


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos
