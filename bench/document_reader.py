"""How well and how fast each PDF text extractor and OCR engine reads the generated documents, whose true text is
known: character error rate (Levenshtein distance / true length, whitespace ignored, so reading order counts) and
seconds per page, as ratios against the reader llmops uses (PDFium for text layers, Tesseract for scans).

    .venv/bin/python bench/document_reader.py [--docs 24] [--scans 12] [--seed 3]

Text layers: pypdfium2 (PDFium), pypdf (plain and layout mode), pdfplumber. Scans: the same documents rasterised with
scan noise (quickstart/doc_render.scan: rotation, blur, JPEG), read by Tesseract (eng+deu+fra, one thread per
process) through llmops.data.documents, and by RapidOCR when `rapidocr_onnxruntime` is installed.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from llmops.data.documents import char_error_rate  # noqa: E402


def pdfium_text(data: bytes) -> str:
    from llmops.data.documents import join_pages, pdf_page_texts

    return join_pages(pdf_page_texts(data))


def pypdf_text(layout: bool) -> Callable[[bytes], str]:
    def read(data: bytes) -> str:
        from pypdf import PdfReader

        mode = "layout" if layout else "plain"
        return "\n".join(page.extract_text(extraction_mode=mode) or "" for page in PdfReader(io.BytesIO(data)).pages)

    return read


def pdfplumber_text(data: bytes) -> str:
    import pdfplumber

    with pdfplumber.open(io.BytesIO(data)) as pdf:
        return "\n".join(page.extract_text() or "" for page in pdf.pages)


def tesseract_text(image: bytes) -> str:
    from llmops.data.documents import document_text

    return document_text("scan.png", image)


def rapidocr_text(image: bytes) -> str:
    from rapidocr_onnxruntime import RapidOCR

    engine = getattr(rapidocr_text, "engine", None) or RapidOCR()
    rapidocr_text.engine = engine  # type: ignore[attr-defined]
    result, _ = engine(image)
    return "\n".join(line[1] for line in result or [])


def measure(name: str, read: Callable[[bytes], str], inputs: list[tuple[bytes, str]]) -> tuple[float, float]:
    errors, seconds = [], []
    for data, truth in inputs:
        start = time.perf_counter()
        text = read(data)
        seconds.append(time.perf_counter() - start)
        errors.append(char_error_rate(text, truth))
    return statistics.mean(errors), statistics.mean(seconds)


def main() -> None:
    import os

    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, default=24)
    parser.add_argument("--scans", type=int, default=12)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("LLMOPS_CACHE", str(Path("/tmp") / f"llmops-bench-reader-{os.getpid()}"))  # no reuse

    from llmops.quickstart.doc_layouts import LAYOUTS
    from llmops.quickstart.doc_render import render_pdf, scan
    from llmops.quickstart.doc_values import DocValues
    from llmops.quickstart.idp_documents import CLASSES, build_document

    rng = random.Random(args.seed)
    pdfs = []
    for i in range(args.docs):
        doc = build_document(DocValues(rng, i % 2 == 1), CLASSES[i % 3], ("en", "de", "fr")[i % 3])
        data, truth = render_pdf(doc, i % len(LAYOUTS), ("en", "de", "fr")[i % 3])
        pdfs.append((data, truth.replace("\f", "")))
    one_page = [(d, t) for d, t in pdfs if "\f" not in t][: args.scans]
    scans = [(scan(d, random.Random(i), "png"), t) for i, (d, t) in enumerate(one_page)]

    print(f"{len(pdfs)} born-digital documents (all {len(LAYOUTS)} layouts, en/de/fr), {len(scans)} scans")
    print(f"{'reader':<28} {'CER':>7} {'s/doc':>8} {'CER ratio':>10} {'time ratio':>11}")
    text_rows = [
        ("pypdfium2 (llmops)", pdfium_text),
        ("pypdf plain", pypdf_text(False)),
        ("pypdf layout", pypdf_text(True)),
        ("pdfplumber", pdfplumber_text),
    ]
    _table(text_rows, pdfs)
    ocr_rows = [("tesseract (llmops)", tesseract_text)]
    if importlib.util.find_spec("rapidocr_onnxruntime"):
        ocr_rows.append(("rapidocr-onnxruntime", rapidocr_text))
    else:
        print("(rapidocr_onnxruntime not installed: RapidOCR not measured)")
    _table(ocr_rows, scans)


def _table(rows: list[tuple[str, Callable[[bytes], str]]], inputs: list[tuple[bytes, str]]) -> None:
    reference = None
    for name, read in rows:
        try:
            error, seconds = measure(name, read, inputs)
        except ImportError as exc:
            print(f"{name:<28} not installed ({exc})")
            continue
        reference = reference or (error, seconds)
        ratio = error / reference[0] if reference[0] else float("inf") if error else 1.0
        print(f"{name:<28} {error:7.4f} {seconds:8.3f} {ratio:10.2f} {seconds / reference[1]:11.2f}")


if __name__ == "__main__":
    main()
