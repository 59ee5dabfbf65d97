"""Schemas and documents read from a real S3 endpoint (moto server)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from llmops.errors import DataError
from llmops.tasks.documents import read_document
from llmops.tasks.idp import load_schema

pytestmark = pytest.mark.integration


@pytest.fixture
def s3_bucket(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    import boto3
    import fsspec
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    for key, value in {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "test",
                       "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    fsspec.get_filesystem_class("s3").clear_instance_cache()
    client = boto3.client("s3", endpoint_url=endpoint)
    client.create_bucket(Bucket="docs")
    client.put_object(Bucket="docs", Key="schema.json", Body=json.dumps({"type": "object"}).encode())
    client.put_object(Bucket="docs", Key="bad.json", Body=b'{"type": }')
    client.put_object(Bucket="docs", Key="doc.txt", Body="Invoice 42".encode())
    try:
        yield "s3://docs"
    finally:
        fsspec.get_filesystem_class("s3").clear_instance_cache()
        server.stop()


def test_schema_and_document_from_s3(s3_bucket: str) -> None:
    assert load_schema(f"{s3_bucket}/schema.json") == {"type": "object"}
    with pytest.raises(DataError, match=r"^s3://docs/bad\.json:1:10: invalid JSON"):
        load_schema(f"{s3_bucket}/bad.json")
    with pytest.raises(DataError, match=r"^s3://docs/missing\.json: not found$"):
        load_schema(f"{s3_bucket}/missing.json")
    assert read_document(f"{s3_bucket}/doc.txt") == "Invoice 42"
    with pytest.raises(DataError, match=r"s3://docs/nope\.pdf: not found"):
        read_document(f"{s3_bucket}/nope.pdf")
