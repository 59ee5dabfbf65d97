"""The one document reader: PDF text layers page by page, OCR for scans and images, `file` records, the cache, and
the warning for a document too long for the context."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from llmops.data import documents
from llmops.data.documents import char_error_rate, document_text, inline_files, join_pages, page_marker
from llmops.errors import DataError

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
PAGES = [
    [
        "Rechnung Nr. RE-2014-0815",
        "Müller & Söhne GmbH, Hauptstraße 5, 10115 Berlin",
        "Datum: 7. Mai 2014",
        "Gesamtbetrag: 1.234,56 EUR",
    ],
    ["Facture n° FA-77 du 07/05/2014", "Total TTC : 1 234,56 €", "Merci de votre confiance."],
]


def _pdf(pages: list[list[str]]) -> bytes:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_font("DejaVu", fname=FONT)
    for lines in pages:
        pdf.add_page()
        pdf.set_font("DejaVu", size=12)
        for line in lines:
            pdf.cell(0, 9, line, new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def _page_image(data: bytes, dpi: int = 200) -> Any:
    import pypdfium2 as pdfium

    return pdfium.PdfDocument(data)[0].render(scale=dpi / 72).to_pil().convert("RGB")


def _squash(text: str) -> str:
    return "".join(text.split())


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMOPS_CACHE", str(tmp_path / "cache"))


def test_pdf_text_layer_every_page_in_order_with_page_markers(tmp_path: Path) -> None:
    path = tmp_path / "invoice.pdf"
    path.write_bytes(_pdf(PAGES))
    text = document_text(str(path))
    assert _squash(text) == _squash(join_pages(["\n".join(lines) for lines in PAGES]))
    assert f"\n{page_marker(2)}\n" in text and text.index("RE-2014-0815") < text.index(page_marker(2))


def test_ocr_reads_a_rendered_page_within_a_character_error_bound(tmp_path: Path) -> None:
    truth = "\n".join(PAGES[0])
    image = _page_image(_pdf(PAGES[:1]))
    for suffix, fmt in ((".png", "PNG"), (".jpg", "JPEG")):
        buf = io.BytesIO()
        image.save(buf, fmt)
        path = tmp_path / f"scan{suffix}"
        path.write_bytes(buf.getvalue())
        assert char_error_rate(document_text(str(path)), truth) < 0.05


def test_a_pdf_page_without_text_goes_to_ocr(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fpdf import FPDF

    png = tmp_path / "page.png"
    _page_image(_pdf(PAGES[:1])).save(png)
    pdf = FPDF()
    pdf.add_page()
    pdf.image(str(png), x=0, y=0, w=210)
    scanned = tmp_path / "scanned.pdf"
    scanned.write_bytes(bytes(pdf.output()))
    calls = []
    real = documents.ocr_image
    monkeypatch.setattr(documents, "ocr_image", lambda image: calls.append(1) or real(image))
    text = document_text(str(scanned))
    assert calls == [1] and char_error_rate(text, "\n".join(PAGES[0])) < 0.05
    # Read again: the cached text, no OCR.
    assert document_text(str(scanned)) == text and calls == [1]


def test_file_records_resolve_against_the_data_files_folder(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.pdf").write_bytes(_pdf(PAGES[:1]))
    data = tmp_path / "train.jsonl"
    records = [
        (1, {"file": "docs/a.pdf", "fields": {"n": "1"}}),
        (2, {"document": "inline", "fields": {}}),
        (3, {"file": "docs/missing.pdf", "fields": {}}),
        (4, {"file": "docs/a.pdf", "document": "x"}),
    ]
    out, problems = inline_files(records, str(data))
    assert "RE-2014-0815" in out[0][1]["document"] and out[0][1]["source_file"] == "docs/a.pdf"
    assert "file" not in out[0][1] and out[1] == records[1] and len(out) == 2  # the failed ones left out
    assert problems[0].startswith(f"{data}:3: ") and "missing.pdf: not found" in problems[0]
    assert problems[1] == f'{data}:4: give "document" (the text) or "file" (a path), not both'


def test_validate_names_a_missing_file(tmp_path: Path) -> None:
    from llmops.data.validate import validate_file

    data = tmp_path / "eval.jsonl"
    data.write_text(json.dumps({"file": "nope.png", "fields": {"total": "1.00"}}) + "\n", encoding="utf-8")
    [problem] = validate_file(str(data), "IDP", ("document_fields",), role="eval")
    assert problem.startswith(f"{data}:1: ") and "nope.png: not found" in problem


def test_an_unreadable_image_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "photo.jpg"
    bad.write_bytes(b"\xff\xd8\xff not really a jpeg")
    with pytest.raises(DataError, match=r"photo\.jpg: not a readable image"):
        document_text(str(bad))


def test_a_document_too_long_for_the_context_is_cut_with_one_warning(
    tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from transformers import AutoTokenizer

    from llmops.evaluation.context import CUT_MARK
    from llmops.evaluation.generate import _encode

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    pages = [f"Page {n} total 12.50 EUR invoice line " * 20 for n in range(1, 5)]
    document = join_pages(pages)
    prompt = [{"role": "user", "content": "Extract.\nDocument:\n" + document}]
    full = len(_encode(tok, [prompt])[0])
    [ids] = _encode(tok, [prompt], limit=full // 2, names=["inv-7.pdf"])
    assert len(ids) <= full // 2
    text = tok.decode(ids)
    assert "Page 1" in text and "Page 4" not in text and CUT_MARK.strip() in text
    err = capsys.readouterr().err
    assert err.count("warning:") == 1 and "inv-7.pdf" in err and f"{full:,} tokens" in err
    assert f"limit of {full // 2:,}" in err and "pages 1-" in err and "of 4" in err
