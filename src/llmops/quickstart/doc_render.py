"""Render synthetic business documents to real PDF files (text layer, DejaVu fonts) and to noisy scans."""

from __future__ import annotations

import io
import random
from datetime import UTC, datetime
from pathlib import Path

import pypdfium2 as pdfium
from PIL import Image, ImageChops, ImageEnhance, ImageFilter

from llmops.quickstart.doc_canvas import Canvas
from llmops.quickstart.doc_layouts import LAYOUTS
from llmops.quickstart.doc_values import Document

SCAN_FORMATS = ("png", "jpeg", "pdf")


def page_size(kind: str) -> tuple[float, float | None, float]:
    """Page width, height (None: as long as the content) and margin in mm: A4, or a till strip for receipts."""
    return (110.0, None, 8.0) if kind == "receipt" else (210.0, 297.0, 18.0)


def render_pdf(doc: Document, layout: int, language: str, font_dir: Path | None = None) -> tuple[bytes, str]:
    """Render `doc` with layout number `layout` and `language`'s labels; returns the PDF bytes and the true text.

    The true text is every text run drawn, in reading order: pages in order, on each page one line per baseline
    from top to bottom, the runs of a line from left to right joined by one space. Pages are separated by a line
    holding only a form feed ("\\n\\f\\n"). A PDF text reader gives the same characters up to whitespace.
    """
    width, height, margin = page_size(doc.kind)
    canvas = Canvas(width, height, margin, font_dir)
    LAYOUTS[layout](canvas, doc, language)
    when = datetime(doc.issue_date.year, doc.issue_date.month, doc.issue_date.day, 9, tzinfo=UTC)
    return canvas.finish(when)


def _degrade(page: Image.Image, rng: random.Random) -> Image.Image:
    """Scanner look: slight rotation, blur, contrast/brightness change and noise, then a JPEG round trip."""
    img = page.rotate(rng.uniform(-1.5, 1.5), resample=Image.Resampling.BICUBIC, fillcolor="white")
    img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 0.8)))
    img = ImageEnhance.Contrast(img).enhance(rng.uniform(0.8, 1.1))
    img = ImageEnhance.Brightness(img).enhance(rng.uniform(0.95, 1.05))
    spread = rng.randint(6, 16)  # uniform noise of +-spread/2 grey levels, drawn from `rng` so scans are repeatable
    noise = Image.frombytes("L", img.size, rng.randbytes(img.size[0] * img.size[1]))
    noise = noise.point([128 - spread // 2 + v * (spread + 1) // 256 for v in range(256)])
    if img.mode == "RGB":
        noise = Image.merge("RGB", (noise, noise, noise))
    img = ImageChops.add(img, noise, scale=1.0, offset=-128)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=rng.randint(55, 85))
    return Image.open(io.BytesIO(buf.getvalue()))


def scan(pdf_bytes: bytes, rng: random.Random, fmt: str) -> bytes:
    """A scanned copy of a PDF: each page rasterised at 150-200 dpi with scan noise and JPEG artefacts.

    `fmt` "png" or "jpeg" gives one image (one-page documents only); "pdf" an image-only PDF, no text layer.
    """
    if fmt not in SCAN_FORMATS:
        raise ValueError(f"scan format {fmt!r} is not one of {SCAN_FORMATS}")
    dpi = rng.randint(150, 200)
    grayscale = fmt == "png" or rng.random() < 0.6  # colour PNG scans would be several MB each
    source = pdfium.PdfDocument(pdf_bytes)
    try:
        if fmt != "pdf" and len(source) != 1:
            raise ValueError(f"a {len(source)}-page document can only be scanned to pdf, not {fmt}")
        pages = [
            _degrade(source[i].render(scale=dpi / 72, grayscale=grayscale).to_pil(), rng) for i in range(len(source))
        ]
    finally:
        source.close()
    buf = io.BytesIO()
    if fmt == "png":
        pages[0].save(buf, "PNG", dpi=(dpi, dpi))
    elif fmt == "jpeg":
        pages[0].save(buf, "JPEG", quality=rng.randint(55, 85), dpi=(dpi, dpi))
    else:
        pages[0].save(
            buf, "PDF", save_all=True, append_images=pages[1:], resolution=float(dpi), quality=rng.randint(55, 85)
        )
    return buf.getvalue()
