"""Tests for the synthetic IDP data of the quickstart."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import jsonschema
import pytest

from llmops.quickstart.idp_data import (
    CLASSES,
    IdpDataset,
    class_schema,
    combined_schema,
    generate_idp_dataset,
    make_document,
    tokenizer_corpus,
)
from llmops.tasks.idp import IDPTask

NAME_FIELDS = ("vendor_name", "merchant_name", "supplier_name")


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> IdpDataset:
    return generate_idp_dataset(tmp_path_factory.mktemp("idp"), n_train=900, n_eval_per_class=30, seed=5)


def test_files_and_record_shapes(dataset: IdpDataset) -> None:
    train, evals = _read(dataset.train), _read(dataset.eval)
    assert len(train) == 900 and len(evals) == 90
    assert all(set(r) == {"document", "fields", "class"} for r in train)
    assert all(set(r) == {"id", "document", "fields", "class"} for r in evals)
    assert len({r["id"] for r in evals}) == 90
    assert Counter(r["class"] for r in evals) == {c: 30 for c in CLASSES}
    assert Counter(r["class"] for r in train) == {c: 300 for c in CLASSES}
    assert dataset.sample_document.read_text().strip()
    assert set(dataset.class_schemas) == set(CLASSES)


def test_deterministic(dataset: IdpDataset, tmp_path: Path) -> None:
    again = generate_idp_dataset(tmp_path, n_train=900, n_eval_per_class=30, seed=5)
    assert again.train.read_bytes() == dataset.train.read_bytes()
    assert again.eval.read_bytes() == dataset.eval.read_bytes()
    other = generate_idp_dataset(tmp_path / "other", n_train=900, n_eval_per_class=30, seed=6)
    assert other.train.read_bytes() != dataset.train.read_bytes()


def test_gold_validates_against_class_and_combined_schemas(dataset: IdpDataset) -> None:
    combined = json.loads(dataset.schema.read_text())
    jsonschema.Draft202012Validator.check_schema(combined)
    for path in dataset.class_schemas.values():
        jsonschema.Draft202012Validator.check_schema(json.loads(path.read_text()))
    checker = jsonschema.FormatChecker()
    for rec in _read(dataset.train) + _read(dataset.eval):
        schema = json.loads(dataset.class_schemas[rec["class"]].read_text())
        jsonschema.validate(rec["fields"], schema, format_checker=checker)
        jsonschema.validate(rec["fields"], combined)
        assert rec["fields"]["document_type"] == rec["class"]


def test_a_wrong_class_fails_its_schema() -> None:
    _, fields = make_document("invoice", __import__("random").Random(0), held_out=False)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(fields, class_schema("receipt"))


def test_every_gold_value_is_in_the_document(dataset: IdpDataset) -> None:
    for rec in _read(dataset.train) + _read(dataset.eval):
        for key, value in rec["fields"].items():
            if key != "document_type":
                assert value in rec["document"], (key, value, rec["document"])


def test_held_out_values_never_seen_in_training(dataset: IdpDataset) -> None:
    train, evals = _read(dataset.train), _read(dataset.eval)
    train_text = "\n".join(r["document"] for r in train)
    seen = {(k, v) for r in train for k, v in r["fields"].items()}
    for rec in evals:
        for key, value in rec["fields"].items():
            if key in NAME_FIELDS:
                assert value not in train_text, value
                stem = value.split()[0]
                assert not re.search(rf"\b{re.escape(stem)}\b", train_text), stem
            elif key not in ("document_type", "currency", "payment_method"):
                assert (key, value) not in seen, (key, value)


def test_layouts_and_distractors_vary(dataset: IdpDataset) -> None:
    evals = _read(dataset.eval)
    first_lines = Counter((r["class"], r["document"].splitlines()[0].isupper()) for r in evals)
    assert all(first_lines[(c, True)] and first_lines[(c, False)] for c in CLASSES)
    orders = [r for r in evals if r["class"] == "purchase_order"]
    assert all(len(re.findall(r"(Buyer|Ship to): ", r["document"])) == 1 for r in orders)


def test_mini_documents_are_key_value_lines(tmp_path: Path) -> None:
    data = generate_idp_dataset(tmp_path, n_train=300, n_eval_per_class=1, seed=1, mini_fraction=1.0)
    for rec in _read(data.train):
        title, *lines = rec["document"].splitlines()
        assert title.isupper() and "Buyer" not in rec["document"]
        expected = {k: v for k, v in rec["fields"].items() if k != "document_type"}
        assert dict(line.split(": ", 1) for line in lines) == expected
    held = _read(data.eval)
    assert not any(r["document"].splitlines()[1].startswith("document_type") for r in held)


def test_prompt_format_and_tokenizer_corpus(dataset: IdpDataset) -> None:
    schema = combined_schema()
    prompt = IDPTask(schema).build_prompt("DOC")
    assert prompt.startswith("Extract the fields from the document as JSON matching the schema.")
    assert "\nFields: document_type (invoice|receipt|purchase_order), invoice_number, " in prompt
    assert prompt.endswith(", supplier_name\nDocument:\nDOC")
    corpus = tokenizer_corpus(dataset, limit=50)
    assert len(corpus) == 100
    held_out_names = {r["fields"].get(k) for r in _read(dataset.eval) for k in NAME_FIELDS} - {None}
    assert not any(name in text for text in corpus for name in held_out_names)
