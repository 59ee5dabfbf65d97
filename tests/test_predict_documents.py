"""`llmops predict` on the documents users have: a born-digital PDF, a scanned (image-only) PDF and a PNG photo,
through the one reader; an untrained model under the schema still answers with schema-valid JSON every time."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

SCHEMA = {
    "type": "object",
    "properties": {
        "document_number": {"type": "string", "maxLength": 24},
        "issue_date": {"type": ["string", "null"], "format": "date"},
        "seller": {
            "type": "object",
            "properties": {"name": {"type": "string", "maxLength": 40}},
            "required": ["name"],
            "additionalProperties": False,
        },
        "line_items": {
            "type": "array",
            "maxItems": 3,
            "items": {
                "type": "object",
                "properties": {
                    "description": {"type": "string", "maxLength": 40},
                    "amount": {"type": "string", "pattern": "^[0-9]{1,6}\\.[0-9]{2}$"},
                },
                "required": ["description", "amount"],
                "additionalProperties": False,
            },
        },
        "total": {"type": "string", "pattern": "^[0-9]{1,6}\\.[0-9]{2}$"},
    },
    "required": ["document_number", "issue_date", "seller", "line_items", "total"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def documents(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A generated invoice as a born-digital PDF, an image-only PDF scan and a PNG photo."""
    from llmops.quickstart.doc_render import render_pdf, scan
    from llmops.quickstart.doc_values import DocValues
    from llmops.quickstart.idp_documents import build_document

    root = tmp_path_factory.mktemp("docs")
    doc = build_document(DocValues(random.Random(4), True), "invoice", "de")
    pdf, _ = render_pdf(doc, 13, "de")
    paths = {"pdf": root / "invoice.pdf", "scan": root / "scan.pdf", "png": root / "photo.png"}
    paths["pdf"].write_bytes(pdf)
    paths["scan"].write_bytes(scan(pdf, random.Random(1), "pdf"))
    paths["png"].write_bytes(scan(pdf, random.Random(2), "png"))
    (root / "schema.json").write_text(json.dumps(SCHEMA), encoding="utf-8")
    return paths


def test_predict_reads_a_pdf_and_answers_schema_valid_json(
    documents: dict[str, Path], tiny_model_dir: Path, tmp_path: Path
) -> None:
    env = {**os.environ, "LLMOPS_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "llmops.cli",
            "predict",
            "--model",
            str(tiny_model_dir),
            "--schema",
            str(documents["pdf"].with_name("schema.json")),
            "--document",
            str(documents["pdf"]),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    jsonschema.validate(json.loads(proc.stdout), SCHEMA)  # the untrained model's answer, decoded under the schema
    assert (tmp_path / "cache" / "documents").is_dir()  # read by the one reader (and cached)


@pytest.mark.parametrize("kind", ["scan", "png"])
def test_predict_reads_scans_through_ocr(
    documents: dict[str, Path], kind: str, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from llmops.data import documents as reader
    from llmops.predict import predict

    monkeypatch.setenv("LLMOPS_CACHE", str(tmp_path / "cache"))
    read = []
    real = reader.ocr_image
    monkeypatch.setattr(reader, "ocr_image", lambda image: read.append(real(image)) or read[-1])
    out = predict(
        str(tiny_model_dir), document=str(documents[kind]), schema=str(documents["pdf"].with_name("schema.json"))
    )
    jsonschema.validate(json.loads(out), SCHEMA)
    assert len(read) == 1 and "Rechnung" in read[0]  # the page went through OCR


def _data_url(path: Path, mime: str) -> str:
    import base64

    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode()}"


def test_serve_reads_documents_sent_as_openai_content_parts(
    documents: dict[str, Path], tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A PDF (`file` part) and a photo (`image_url` part) sent with the official client: the server reads them with
    the one reader, builds the IDP prompt training used (same token count), answers schema-valid JSON; a URL to fetch
    and broken base64 are 400s naming the part."""
    import openai
    from fastapi.testclient import TestClient

    from llmops.data.documents import document_text
    from llmops.models.loader import load_for_inference
    from llmops.serving.app import create_app
    from llmops.serving.engine import Engine
    from llmops.tasks.idp import IDPTask

    monkeypatch.setenv("LLMOPS_CACHE", str(tmp_path / "cache"))
    engine = Engine(*load_for_inference(str(tiny_model_dir)), max_batch_size=2, name="idp")
    app = create_app(engine, served_name="idp", default_schema=SCHEMA, default_max_tokens=400)
    try:
        with TestClient(app) as http:
            client = openai.OpenAI(base_url="http://testserver/v1", api_key="none", http_client=http, max_retries=0)
            parts = {
                "pdf": {
                    "type": "file",
                    "file": {"filename": "invoice.pdf", "file_data": _data_url(documents["pdf"], "application/pdf")},
                },
                "png": {"type": "image_url", "image_url": {"url": _data_url(documents["png"], "image/png")}},
            }
            for kind, part in parts.items():
                answer = client.chat.completions.create(
                    model="idp", messages=[{"role": "user", "content": [part]}], max_tokens=400, temperature=0
                )
                jsonschema.validate(json.loads(answer.choices[0].message.content), SCHEMA)
                prompt = IDPTask(SCHEMA).build_prompt(document_text(str(documents[kind])))
                assert answer.usage.prompt_tokens == len(engine.encode_chat([{"role": "user", "content": prompt}]))
            for bad, words in (
                (_data_url(documents["png"], "image/png")[:-7] + "!!!====", "not valid base64"),
                ("https://example.com/invoice.png", "fetches no URLs"),
            ):
                with pytest.raises(openai.BadRequestError, match=words):
                    client.chat.completions.create(
                        model="idp",
                        max_tokens=8,
                        messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": bad}}]}],
                    )
    finally:
        engine.close()
