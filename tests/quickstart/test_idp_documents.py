"""Tests for the full-page synthetic IDP documents: real PDFs, scans, gold JSON and the held-out split."""

from __future__ import annotations

import io
import json
import random
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import jsonschema
import pypdfium2 as pdfium
import pytest
from PIL import Image

from llmops.errors import ConfigError
from llmops.quickstart.doc_labels import DATE_STYLES, format_amount, format_date, format_money
from llmops.quickstart.doc_layouts import HELD_OUT_LAYOUTS, LAYOUTS, TRAIN_LAYOUTS
from llmops.quickstart.doc_render import render_pdf, scan
from llmops.quickstart.doc_values import DocValues, gold_fields
from llmops.quickstart.idp_documents import (
    CLASSES,
    DocumentDataset,
    build_document,
    document_schema,
    generate_document_dataset,
)

LANGUAGES = ("en", "de", "fr")


def _read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _squash(text: str) -> str:
    return "".join(text.replace("\f", "").split())


def _pdf_text(data: bytes) -> str:
    pdf = pdfium.PdfDocument(data)
    return "".join(pdf[i].get_textpage().get_text_range() for i in range(len(pdf)))


def _cents(amount: str) -> int:
    return int(amount.replace(".", "").replace("-", "")) * (-1 if amount.startswith("-") else 1)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> DocumentDataset:
    return generate_document_dataset(tmp_path_factory.mktemp("docs"), n_train=18, n_eval=9, seed=11)


@pytest.fixture(scope="module")
def rendered() -> list[tuple[Any, int, str, bytes, str]]:
    """Every layout with every class (languages in turn), plus a two-page invoice: (doc, layout, lang, pdf, text)."""
    out = []
    for layout in range(len(LAYOUTS)):
        for k, kind in enumerate(CLASSES):
            language = LANGUAGES[(layout + k) % 3]
            doc = build_document(
                DocValues(random.Random(f"{layout}-{kind}"), layout in HELD_OUT_LAYOUTS),
                kind,
                language,
                long=kind == "invoice" and layout % 8 == 0,
            )
            out.append((doc, layout, language, *render_pdf(doc, layout, language)))
    return out


def test_files_and_records(dataset: DocumentDataset) -> None:
    train, evals = _read(dataset.train), _read(dataset.eval)
    assert len(train) == 18 and len(evals) == 9
    keys = ["id", "file", "fields", "class", "language", "layout", "scanned"]
    for rec in train + evals:
        assert list(rec) == keys
        path = dataset.train.parent / rec["file"]
        assert rec["file"].startswith("docs/") and path.is_file() and path.stem == rec["id"]
        assert path.suffix == ".pdf" or rec["scanned"]
        assert rec["fields"]["document_type"] == rec["class"] and rec["language"] in LANGUAGES
    assert sum(r["scanned"] for r in train) == round(18 * 0.25) and sum(r["scanned"] for r in evals) == 2
    assert {r["class"] for r in evals} == set(CLASSES)
    assert _pdf_text(dataset.sample_document.read_bytes()).strip()
    assert json.loads(dataset.schema.read_text()) == document_schema()


def test_gold_validates_against_the_schema(dataset: DocumentDataset) -> None:
    schema = document_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    golds = [r["fields"] for r in _read(dataset.train) + _read(dataset.eval)]
    golds += [
        gold_fields(
            build_document(DocValues(random.Random(i), i % 2 == 0), CLASSES[i % 3], LANGUAGES[i % 3], long=i % 10 == 0)
        )
        for i in range(300)
    ]
    for gold in golds:
        validator.validate(gold)
        assert list(gold) == list(schema["properties"])
    bad = {**golds[0], "total": "12.5"}
    assert not validator.is_valid(bad)
    assert not validator.is_valid({**golds[0], "extra": 1})


def test_amounts_add_up() -> None:
    for i in range(300):
        doc = build_document(DocValues(random.Random(i), False), CLASSES[i % 3], LANGUAGES[i % 3])
        gold = gold_fields(doc)
        assert 1 <= len(gold["line_items"]) <= 8
        for item in gold["line_items"]:
            expected = (Decimal(str(item["quantity"])) * Decimal(item["unit_price"])).quantize(
                Decimal("0.01"), rounding=ROUND_HALF_UP
            )
            assert Decimal(item["amount"]) == expected
        net = sum(_cents(i["amount"]) for i in gold["line_items"]) - doc.discount + doc.shipping
        if gold["subtotal"] is None:
            assert gold["tax"] is None and _cents(gold["total"]) == net
        else:
            assert _cents(gold["subtotal"]) == net
            tax = (Decimal(net) * doc.tax_rate / 100).quantize(Decimal(1), rounding=ROUND_HALF_UP)
            assert _cents(gold["tax"]) == tax
            assert _cents(gold["total"]) == net + _cents(gold["tax"])
        assert gold["buyer"] is None if doc.kind == "receipt" else gold["buyer"] is not None


def test_held_out_layouts_and_values_stay_out_of_training(dataset: DocumentDataset) -> None:
    train, evals = _read(dataset.train), _read(dataset.eval)
    assert {r["layout"] for r in train} <= set(TRAIN_LAYOUTS)
    assert {r["layout"] for r in evals} <= set(HELD_OUT_LAYOUTS)
    assert set(TRAIN_LAYOUTS).isdisjoint(HELD_OUT_LAYOUTS) and len(LAYOUTS) >= 16
    train_text = json.dumps([r["fields"] for r in train], ensure_ascii=False)
    for rec in evals:
        assert rec["fields"]["seller"]["name"] not in train_text
        assert rec["fields"]["document_number"] not in {r["fields"]["document_number"] for r in train}
    names = [
        {build_document(DocValues(random.Random(i), held), CLASSES[i % 3], "de").seller.name for i in range(200)}
        for held in (False, True)
    ]
    assert not names[0] & names[1]


def test_pdf_text_layer_equals_true_text(rendered: list) -> None:
    pages = set()
    for doc, layout, language, data, text in rendered:
        assert data.startswith(b"%PDF-")
        assert _squash(_pdf_text(data)) == _squash(text), (layout, doc.kind, language)
        pages.add(len(pdfium.PdfDocument(data)))
        assert text.count("\f") == len(pdfium.PdfDocument(data)) - 1
    assert pages == {1, 2}


def test_gold_values_are_printed(rendered: list) -> None:
    for doc, layout, language, _, text in rendered:
        gold, flat = gold_fields(doc), _squash(text)
        assert _squash(gold["document_number"]) in flat
        assert _squash(format_amount(_cents(gold["total"]), language)) in flat, (layout, gold["total"])
        assert any(_squash(format_date(doc.issue_date, language, s)) in flat for s in DATE_STYLES[language])
        for item in gold["line_items"]:
            assert _squash(item["description"]) in flat
        for party in (gold["seller"], gold["buyer"]) if gold["buyer"] else (gold["seller"],):
            assert _squash(party["name"]) in flat
            # the address is printed line by line; the gold joins its lines with ", "
            assert all(_squash(line) in flat for line in party["address"].split(", "))
            assert party["tax_id"] is None or _squash(party["tax_id"]) in flat


def test_pages_are_full_and_receipts_short(rendered: list) -> None:
    for doc, _, _, _, text in rendered:
        first = text.split("\f")[0]
        assert (250 if doc.kind == "receipt" else 700) <= len(first) <= 2800, (doc.kind, len(first))


def test_scans_have_no_text_layer(rendered: list) -> None:
    _, _, _, one_page, _ = rendered[1]
    two_pages = next(data for doc, _, _, data, _ in rendered if doc.long)
    for fmt, kind in (("png", "PNG"), ("jpeg", "JPEG")):
        image = Image.open(io.BytesIO(scan(one_page, random.Random(0), fmt)))
        assert image.format == kind and image.width > 500
    pdf = pdfium.PdfDocument(scan(two_pages, random.Random(0), "pdf"))
    assert len(pdf) == 2
    assert all(pdf[i].get_textpage().get_text_range().strip() == "" for i in range(2))
    with pytest.raises(ValueError):
        scan(two_pages, random.Random(0), "png")


def test_scanned_dataset_files_open(dataset: DocumentDataset) -> None:
    for rec in _read(dataset.train) + _read(dataset.eval):
        data = (dataset.train.parent / rec["file"]).read_bytes()
        if rec["file"].endswith(".pdf"):
            text = _pdf_text(data).strip()
            assert bool(text) != rec["scanned"]
        else:
            assert rec["scanned"]
            Image.open(io.BytesIO(data)).verify()


def test_same_seed_same_dataset(tmp_path: Path) -> None:
    a = generate_document_dataset(tmp_path / "a", n_train=4, n_eval=2, seed=3, scan_fraction=0.5)
    b = generate_document_dataset(tmp_path / "b", n_train=4, n_eval=2, seed=3, scan_fraction=0.5)
    assert a.train.read_bytes() == b.train.read_bytes() and a.eval.read_bytes() == b.eval.read_bytes()
    assert all((b.root / r["file"]).read_bytes() == (a.root / r["file"]).read_bytes() for r in _read(a.train))
    c = generate_document_dataset(tmp_path / "c", n_train=4, n_eval=2, seed=4, scan_fraction=0.0)
    assert c.train.read_bytes() != a.train.read_bytes()


def test_local_number_and_date_formats() -> None:
    assert [format_amount(123456, lang) for lang in LANGUAGES] == ["1,234.56", "1.234,56", "1 234,56"]
    assert format_money(123456, "EUR", "de", "symbol") == "1.234,56 €"
    assert format_money(-5000, "GBP", "en", "symbol") == "-£50.00"
    assert format_money(995, "CHF", "fr", "code") == "9,95 CHF"
    day = date(2014, 5, 7)
    assert [format_date(day, "en", s) for s in DATE_STYLES["en"]] == ["7 May 2014", "May 7, 2014", "2014-05-07"]
    assert [format_date(day, "de", s) for s in DATE_STYLES["de"]] == ["7. Mai 2014", "07.05.2014"]
    assert [format_date(day, "fr", s) for s in DATE_STYLES["fr"]] == ["7 mai 2014", "07/05/2014"]


@pytest.mark.parametrize(
    "options", [{"scan_fraction": 1.5}, {"languages": ("es",)}, {"classes": ("memo",)}, {"n_train": -1}]
)
def test_bad_options_are_config_errors(tmp_path: Path, options: dict[str, Any]) -> None:
    kwargs = {"n_train": 1, "n_eval": 1, "seed": 0, **options}
    with pytest.raises(ConfigError, match=next(iter(options))):
        generate_document_dataset(tmp_path, **kwargs)
    assert not (tmp_path / "train.jsonl").exists()
