"""Schemas and documents read from a real S3 endpoint (moto server)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from tests.conftest import delete_bucket

from llmops.errors import DataError
from llmops.tasks.documents import read_document
from llmops.tasks.idp import load_schema

pytestmark = pytest.mark.integration


@pytest.fixture
def docs_bucket(s3_env: str) -> Iterator[str]:
    """A bucket `docs` with a schema, a broken schema and a document, on the session's moto server."""
    import boto3

    client = boto3.client("s3", endpoint_url=s3_env)
    client.create_bucket(Bucket="docs")
    client.put_object(Bucket="docs", Key="schema.json", Body=json.dumps({"type": "object"}).encode())
    client.put_object(Bucket="docs", Key="bad.json", Body=b'{"type": }')
    client.put_object(Bucket="docs", Key="doc.txt", Body=b"Invoice 42")
    try:
        yield "s3://docs"
    finally:
        delete_bucket(client, "docs")


def test_schema_and_document_from_s3(docs_bucket: str) -> None:
    assert load_schema(f"{docs_bucket}/schema.json") == {"type": "object"}
    with pytest.raises(DataError, match=r"^s3://docs/bad\.json:1:10: invalid JSON"):
        load_schema(f"{docs_bucket}/bad.json")
    with pytest.raises(DataError, match=r"^s3://docs/missing\.json: not found$"):
        load_schema(f"{docs_bucket}/missing.json")
    assert read_document(f"{docs_bucket}/doc.txt") == "Invoice 42"
    with pytest.raises(DataError, match=r"s3://docs/nope\.pdf: not found"):
        read_document(f"{docs_bucket}/nope.pdf")
