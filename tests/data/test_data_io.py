"""Reading records through fsspec: local files, a real S3 endpoint (moto), HTTP; every problem with FILE:LINE."""

from __future__ import annotations

import gzip
import importlib.util
import json
import time
from pathlib import Path

import pytest

from llmops.data.io import decode_text, exists, read_records, read_text, scan_records
from llmops.errors import DataError


def _write(path: Path, text: str | bytes) -> str:
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return str(path)


def test_jsonl_records_with_line_numbers_and_blank_lines(tmp_path: Path) -> None:
    name = _write(tmp_path / "d.jsonl", '{"a": 1}\n\n{"a": 2}\r\n{"a": "é"}\n')
    assert read_records(name) == [(1, {"a": 1}), (3, {"a": 2}), (4, {"a": "é"})]


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    name = _write(tmp_path / "d.jsonl", b'\xef\xbb\xbf{"a": 1}\n{"a": 2}\n')
    assert read_records(name) == [(1, {"a": 1}), (2, {"a": 2})]


def test_every_problem_is_collected_with_its_line(tmp_path: Path) -> None:
    lines = ['{"a": 1}', '{"a": 2', "[1, 2]", '"text"', '{"a": 5}', "not json"]
    name = _write(tmp_path / "d.jsonl", "\n".join(lines) + "\n")
    with pytest.raises(DataError) as info:
        read_records(name)
    problems = info.value.problems
    assert [p.split(": ", 1)[0] for p in problems] == [f"{name}:2", f"{name}:3", f"{name}:4", f"{name}:6"]
    assert problems[0].startswith(f"{name}:2: not valid JSON: Expecting ',' delimiter")
    assert problems[1] == f"{name}:3: a record must be a JSON object, got an array"
    assert problems[2] == f"{name}:4: a record must be a JSON object, got a string"
    assert str(info.value).startswith(f"{name}: 4 problems found, first: {name}:2:")
    assert [line for line, _ in scan_records(name).records] == [1, 5]


def test_non_utf8_bytes_report_the_line(tmp_path: Path) -> None:
    name = _write(tmp_path / "d.jsonl", b'{"a": 1}\n{"a": "caf\xe9"}\n{"a": 3}\n')
    with pytest.raises(DataError) as info:
        read_records(name)
    assert info.value.problems == [f"{name}:2: not valid UTF-8 (byte 0xe9 at column 11); save the file as UTF-8"]


def test_empty_and_missing_files(tmp_path: Path) -> None:
    empty = _write(tmp_path / "empty.jsonl", "\n  \n")
    with pytest.raises(DataError, match="empty.jsonl: the file is empty"):
        read_records(empty)
    missing = str(tmp_path / "nope.jsonl")
    with pytest.raises(DataError) as info:
        read_records(missing)
    assert str(info.value) == f"{missing}: not found"
    assert exists(missing) is False and exists(empty) is True
    with pytest.raises(DataError, match="is a directory"):
        read_records(str(tmp_path))


def test_json_array_lines_are_where_elements_start(tmp_path: Path) -> None:
    text = '[\n  {"a": 1},\n  {\n    "a": 2\n  }, 7,\n  {"a": [3,\n 4]}\n]\n'
    name = _write(tmp_path / "d.json", text)
    result = scan_records(name)
    assert result.records == [(2, {"a": 1}), (3, {"a": 2}), (6, {"a": [3, 4]})]
    assert result.problem_lines() == [f"{name}:5: a record must be a JSON object, got a number"]


def test_json_object_with_data_list(tmp_path: Path) -> None:
    text = json.dumps({"version": 1, "records": [{"a": 1}, {"a": 2}]}, indent=2)
    name = _write(tmp_path / "d.json", text)
    assert read_records(name) == [(4, {"a": 1}), (7, {"a": 2})]
    compact = _write(tmp_path / "c.json", '{"data": [{"a": 1}, {"a": 2}]}')
    assert read_records(compact) == [(1, {"a": 1}), (1, {"a": 2})]


def test_invalid_json_document_reports_its_line(tmp_path: Path) -> None:
    name = _write(tmp_path / "d.json", '[\n {"a": 1},\n {"a": }\n]\n')
    with pytest.raises(DataError) as info:
        read_records(name)
    assert info.value.problems[0].startswith(f"{name}:3: not valid JSON: Expecting value")


def test_json_lines_named_json_are_read_as_lines(tmp_path: Path) -> None:
    name = _write(tmp_path / "d.json", '{"a": 1}\n{"a": 2}\n[3]\n')
    result = scan_records(name)
    assert result.records == [(1, {"a": 1}), (2, {"a": 2})]
    assert result.problem_lines() == [f"{name}:3: a record must be a JSON object, got an array"]


def test_gs_without_gcsfs_names_the_package() -> None:
    if importlib.util.find_spec("gcsfs") is not None:
        pytest.skip("gcsfs is installed; the missing-package message cannot be shown")
    with pytest.raises(DataError, match=r"^gs://bucket/d.jsonl: reading gs:// needs an extra package: .*gcsfs"):
        read_records("gs://bucket/d.jsonl")


def test_single_line_jsonl_is_one_record(tmp_path: Path) -> None:
    name = _write(tmp_path / "one.jsonl", '{"input": "x", "output": "y"}')
    assert read_records(name) == [(1, {"input": "x", "output": "y"})]


def test_read_text_and_non_utf8_text(tmp_path: Path) -> None:
    good = _write(tmp_path / "s.json", '{"type": "object"}')
    assert json.loads(read_text(good)) == {"type": "object"}
    bad = _write(tmp_path / "b.txt", b"ok\n\xff\n")
    with pytest.raises(DataError, match=r"b.txt:2: not valid UTF-8 \(byte 0xff\)"):
        read_text(bad)
    with pytest.raises(DataError, match=r"^doc:1: not valid UTF-8 \(byte 0xe9\); save the file as UTF-8$"):
        decode_text("doc", "caf\xe9".encode("latin-1"))


def test_gzip_records_files_are_decompressed(tmp_path: Path) -> None:
    name = _write(tmp_path / "d.jsonl.gz", gzip.compress(b'{"a": 1}\n\n{"a": 2}\n'))
    assert read_records(name) == [(1, {"a": 1}), (3, {"a": 2})]
    bad = _write(tmp_path / "bad.jsonl.gz", gzip.compress(b'{"a": 1}\n{oops\n'))
    with pytest.raises(DataError, match=r"bad\.jsonl\.gz:2: not valid JSON"):
        read_records(bad)
    array = _write(tmp_path / "a.json.gz", gzip.compress(b'[\n{"a": 1},\n{"a": 2}\n]'))
    assert read_records(array) == [(2, {"a": 1}), (3, {"a": 2})]
    plain = _write(tmp_path / "plain.jsonl.gz", '{"a": 1}\n')
    with pytest.raises(DataError, match=r"plain\.jsonl\.gz: not a readable gzip file .*drop the \.gz"):
        read_records(plain)


def test_an_empty_file_is_a_problem_unless_allowed(tmp_path: Path) -> None:
    empty = _write(tmp_path / "e.jsonl", "\n")
    assert scan_records(empty).problem_lines() == [
        f"{empty}: the file is empty; expected JSON Lines records, one object per line"
    ]
    allowed = scan_records(empty, empty_ok=True)
    assert (allowed.records, allowed.problems) == ([], [])


@pytest.mark.integration
def test_s3_reads_through_a_real_endpoint(s3_bucket) -> None:
    body = b'{"input": "doc", "output": "{}"}\n{"input": "doc2", "output": "{}"}\n'
    s3_bucket.put_object(Bucket="llmops-data", Key="sets/train.jsonl", Body=body)
    s3_bucket.put_object(Bucket="llmops-data", Key="schema.json", Body=b'{"type": "object"}')
    location = "s3://llmops-data/sets/train.jsonl"
    assert read_records(location) == [(1, {"input": "doc", "output": "{}"}), (2, {"input": "doc2", "output": "{}"})]
    assert read_text("s3://llmops-data/schema.json") == '{"type": "object"}'
    assert exists(location) and not exists("s3://llmops-data/other.jsonl")


@pytest.mark.integration
def test_s3_problems_name_the_s3_location(s3_bucket) -> None:
    s3_bucket.put_object(Bucket="llmops-data", Key="bad.jsonl", Body=b'{"a": 1}\n{oops\n')
    with pytest.raises(DataError) as info:
        read_records("s3://llmops-data/bad.jsonl")
    assert info.value.problems[0].startswith("s3://llmops-data/bad.jsonl:2: not valid JSON")
    with pytest.raises(DataError) as missing:
        read_records("s3://llmops-data/missing.jsonl")
    assert str(missing.value) == "s3://llmops-data/missing.jsonl: not found"
    with pytest.raises(DataError) as no_bucket:
        read_records("s3://no-such-bucket/x.jsonl")
    assert str(no_bucket.value) == "s3://no-such-bucket/x.jsonl: not found (the bucket does not exist)"


@pytest.mark.integration
def test_s3_unreachable_endpoint_fails_fast(s3_env: str, closed_port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{closed_port}")
    start = time.monotonic()
    with pytest.raises(DataError) as info:
        read_records("s3://llmops-data/train.jsonl")
    assert time.monotonic() - start < 15
    message = str(info.value)
    assert message.startswith("s3://llmops-data/train.jsonl: cannot reach the storage endpoint")
    assert "AWS_ENDPOINT_URL" in message and "\n" not in message


@pytest.mark.integration
def test_s3_without_credentials_is_one_clear_error(
    s3_env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    with pytest.raises(DataError, match=r"^s3://llmops-data/x.jsonl: no credentials for object storage"):
        read_records("s3://llmops-data/x.jsonl")


@pytest.mark.integration
def test_http_reads_and_missing_url(http_root) -> None:
    base, root = http_root
    (root / "train.jsonl").write_text('{"prompt": "p", "completion": "c"}\n{"prompt": "q"\n', encoding="utf-8")
    result = scan_records(f"{base}/train.jsonl")
    assert result.records == [(1, {"prompt": "p", "completion": "c"})]
    assert result.problem_lines()[0].startswith(f"{base}/train.jsonl:2: not valid JSON")
    with pytest.raises(DataError) as info:
        read_records(f"{base}/missing.jsonl")
    assert str(info.value) == f"{base}/missing.jsonl: not found"


def test_http_unreachable_server(closed_port: int) -> None:
    start = time.monotonic()
    with pytest.raises(DataError, match=r"cannot reach the server"):
        read_records(f"http://127.0.0.1:{closed_port}/train.jsonl")
    assert time.monotonic() - start < 15


def test_unknown_protocol_is_a_clear_error() -> None:
    with pytest.raises(DataError, match=r"^nosuch://x/y.jsonl: "):
        read_records("nosuch://x/y.jsonl")
