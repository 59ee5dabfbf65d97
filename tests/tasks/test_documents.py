"""read_document: PDF text layers, text files, inline text and missing files."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmops.errors import DataError
from llmops.tasks.documents import read_document


def _pdf(content: bytes) -> bytes:
    """A one-page PDF whose page draws `content` (a content stream) with Helvetica as /F1."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
        b"/Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = b"%PDF-1.4\n"
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return out


def test_pdf_text_layer(tmp_path: Path) -> None:
    pdf = tmp_path / "invoice.pdf"
    pdf.write_bytes(_pdf(b"BT /F1 12 Tf 72 720 Td (Invoice INV-20391) Tj 0 -16 Td (Total: 1234.50 EUR) Tj ET"))
    text = read_document(str(pdf))
    assert "Invoice INV-20391" in text and "Total: 1234.50 EUR" in text
    assert text.index("INV-20391") < text.index("Total")
    assert "INV-20391" in read_document(pdf.as_uri())


def test_pdf_without_text_layer(tmp_path: Path) -> None:
    scan = tmp_path / "scan.pdf"
    scan.write_bytes(_pdf(b"0 0 m 100 100 l S"))
    with pytest.raises(DataError, match=r"scan\.pdf: no text found"):
        read_document(str(scan))


def test_broken_pdf(tmp_path: Path) -> None:
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"this is not a pdf")
    with pytest.raises(DataError, match=r"broken\.pdf: not a readable PDF"):
        read_document(str(broken))


def test_text_files_and_inline_text(tmp_path: Path) -> None:
    doc = tmp_path / "receipt.txt"
    doc.write_text("Receipt\nTotal: 9.99 é\n", encoding="utf-8")
    assert read_document(str(doc)) == "Receipt\nTotal: 9.99 é\n"
    spaced = tmp_path / "my receipt"
    spaced.write_text("Spaced name", encoding="utf-8")
    assert read_document(str(spaced)) == "Spaced name"
    inline = "Invoice No: 7\nVendor: Acme"
    assert read_document(inline) == inline
    assert read_document("Please see the attached receipt.pdf") == "Please see the attached receipt.pdf"
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1\.txt:1: not valid UTF-8 \(byte 0xe9\); save the file as UTF-8"):
        read_document(str(latin1))


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pdf"
    with pytest.raises(DataError, match=r"nope\.pdf: not found"):
        read_document(str(missing))
    with pytest.raises(DataError, match="not found"):
        read_document(missing.as_uri())
