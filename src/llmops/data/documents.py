"""The one document reader: a file (or URI) in, its text out, as training, evaluation, `predict` and serving see it.

- PDFs with a text layer: every page's text through PDFium (pypdfium2), in reading order. Chosen by measurement
  (bench/document_reader.py): on generated documents whose true text is known, PDFium's text came closest to it and
  fastest (pypdf's plain and layout modes and pdfplumber were compared).
- A PDF page without a text layer (a scan saved as PDF) is rendered and read by OCR, page by page, automatically.
- Images (PNG, JPEG, TIFF, every frame of a multi-page TIFF) go to OCR: the Tesseract command, with every
  installed language of English, German and French (`ocr_languages`).
- Text files are decoded as UTF-8.

Pages after the first start with a marker line, `--- page N ---`, so a model (and a person) sees where a page
breaks. OCR is slow (1-3 s a page on 2 cores), so the text of a file is cached by the hash of its bytes under
`<cache>/documents/` (see `llmops.config.cache_dir`): a training set read again, or an eval set read by every run,
costs nothing the second time.
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import PurePosixPath
from typing import Any

from llmops.data.io import decode_text, read_bytes
from llmops.errors import DataError

PDF_SUFFIXES = {".pdf"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff"}
TEXT_SUFFIXES = {".txt", ".text", ".md"}
DOCUMENT_SUFFIXES = PDF_SUFFIXES | IMAGE_SUFFIXES | TEXT_SUFFIXES
# A page with fewer visible characters in its text layer than this is treated as a scan and read by OCR.
MIN_TEXT_CHARS = 16
OCR_DPI = 300
READER_VERSION = "1"  # part of the cache key: bump when what the reader returns changes
_PDFIUM = threading.Lock()


def page_marker(number: int) -> str:
    """The line that starts page `number` (2, 3, ...) in a document's text."""
    return f"--- page {number} ---"


def join_pages(pages: list[str]) -> str:
    """Page texts as one document, each page after the first introduced by its marker line."""
    parts = []
    for number, text in enumerate(pages, start=1):
        text = text.strip("\n")
        parts.append(text if number == 1 else f"{page_marker(number)}\n{text}")
    return "\n".join(parts)


def _kind(location: str, data: bytes) -> str:
    """ "pdf", "image" or "text", from the content's magic bytes, else the suffix."""
    if data[:5] == b"%PDF-":
        return "pdf"
    if data[:8] == b"\x89PNG\r\n\x1a\n" or data[:3] == b"\xff\xd8\xff" or data[:4] in (b"II*\x00", b"MM\x00*"):
        return "image"
    suffix = PurePosixPath(location.split("?", 1)[0]).suffix.lower()
    if suffix in PDF_SUFFIXES:
        return "pdf"
    if suffix in IMAGE_SUFFIXES:
        return "image"
    return "text"


# --- OCR ------------------------------------------------------------------------------------------------------


_NO_TESSERACT = (
    "reading a scan needs the Tesseract OCR engine: install it with `make install-ocr` (Debian: "
    "apt-get install tesseract-ocr tesseract-ocr-deu tesseract-ocr-fra)"
)


def _tesseract(*args: str, stdin: bytes | None = None) -> bytes:
    """Run the `tesseract` command on one thread (its own environment only: OMP_THREAD_LIMIT must not reach this
    process's torch); its standard output."""
    import subprocess

    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}
    try:
        done = subprocess.run(["tesseract", *args], input=stdin, capture_output=True, env=env, timeout=600, check=False)
    except FileNotFoundError:
        raise DataError(_NO_TESSERACT) from None
    if done.returncode != 0:
        raise DataError(f"tesseract failed: {done.stderr.decode(errors='replace').strip().splitlines()[-1:]}")
    return done.stdout


def ocr_languages() -> str:
    """Tesseract's language argument: the installed ones of English, German and French ("eng+deu+fra")."""
    lines = _tesseract("--list-langs").decode(errors="replace").splitlines()
    installed = {line.strip() for line in lines[1:] if line.strip()}  # the first line is a header
    chosen = [lang for lang in ("eng", "deu", "fra") if lang in installed]
    return "+".join(chosen or sorted(installed - {"osd"})[:1] or ["eng"])


def ocr_image(image: Any) -> str:
    """The text of a PIL image read by Tesseract (page segmentation: automatic). Tesseract runs on one thread:
    its OpenMP threads spin on small machines (measured on 2 cores: 8.8 s a page with them, 1.6 s without);
    documents are read in parallel instead (`inline_files`)."""
    buf = io.BytesIO()
    image.convert("L").save(buf, "PNG")
    return _tesseract("stdin", "stdout", "-l", ocr_languages(), "--psm", "3", stdin=buf.getvalue()).decode(
        "utf-8", errors="replace"
    )


def _image_pages(location: str, data: bytes) -> list[str]:
    """OCR text of every frame of an image file."""
    from PIL import Image, ImageSequence, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            return [ocr_image(frame.copy()) for frame in ImageSequence.Iterator(image)]
    except (UnidentifiedImageError, OSError) as exc:
        raise DataError(f"{location}: not a readable image ({exc})") from None


# --- PDF ------------------------------------------------------------------------------------------------------


def _visible(text: str) -> int:
    return sum(not c.isspace() for c in text)


def _page_picture(page: Any) -> Any:
    """A page without text as an image for OCR: the scan it embeds at its own resolution when it is one picture
    of at least 100 dpi, else the page rendered at OCR_DPI."""
    import pypdfium2.raw as raw

    width_in = page.get_width() / 72
    images = [obj for obj in page.get_objects() if obj.type == raw.FPDF_PAGEOBJ_IMAGE]
    if len(images) == 1:
        try:
            picture = images[0].get_bitmap(render=False).to_pil()
        except Exception:  # noqa: BLE001 - an image PDFium cannot decode alone: render the page instead
            picture = None
        if picture is not None and picture.width >= 100 * width_in:
            return picture
    return page.render(scale=OCR_DPI / 72).to_pil()


def pdf_page_texts(data: bytes, location: str = "document") -> list[str]:
    """The text of every page of a PDF: its text layer, or OCR for a page without one."""
    import pypdfium2 as pdfium

    pages: list[Any] = []  # a page's text, or its picture for OCR
    with _PDFIUM:  # PDFium is not thread-safe; OCR (the slow part) runs outside the lock
        try:
            pdf = pdfium.PdfDocument(data)
        except pdfium.PdfiumError as exc:
            raise DataError(f"{location}: not a readable PDF ({exc})") from None
        try:
            for page in pdf:
                textpage = page.get_textpage()
                text = textpage.get_text_range().replace("\r\n", "\n").replace("\r", "\n")
                textpage.close()
                pages.append(text if _visible(text) >= MIN_TEXT_CHARS else _page_picture(page))
                page.close()
        finally:
            pdf.close()
    return [page if isinstance(page, str) else ocr_image(page) for page in pages]


# --- the reader -----------------------------------------------------------------------------------------------


def _cache_path(digest: str) -> Any:
    from llmops.config import cache_dir

    return cache_dir() / "documents" / f"{digest}.txt"


def _cached(data: bytes, read: Any) -> str:
    """`read()` once per content (by hash), kept in the cache; a cache that cannot be written is skipped."""
    digest = hashlib.sha256(READER_VERSION.encode() + b"\0" + data).hexdigest()
    path = _cache_path(digest)
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        pass
    text = read()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass
    return text


def document_text(location: str, data: bytes | None = None) -> str:
    """The text of the document at `location` (a path or URI): PDF text layer, OCR for scans and images, UTF-8
    for text files; pages after the first start with a `--- page N ---` line. DataError when it cannot be read or
    holds no text."""
    data = read_bytes(location) if data is None else data
    kind = _kind(location, data)
    if kind == "text":
        return decode_text(location, data)
    if kind == "pdf":
        text = _cached(data, lambda: join_pages(pdf_page_texts(data, location)))
    else:
        text = _cached(data, lambda: join_pages(_image_pages(location, data)))
    if not _visible(text):
        raise DataError(f"{location}: no text found (neither a text layer nor anything OCR could read)")
    return text


def resolve_location(value: str, base: str | None) -> str:
    """`value` (a record's `file`) as a location: URIs and absolute paths as they are, relative paths against
    `base` (the data file's folder or URI prefix)."""
    if "://" in value or os.path.isabs(value) or not base:
        return value
    if "://" in base:
        return base.rstrip("/") + "/" + value
    return os.path.join(base, value)


def data_folder(source: str | None) -> str | None:
    """The folder (or URI prefix) that holds the data file `source`, against which record files resolve."""
    if not source:
        return None
    if "://" in source:
        return source.rsplit("/", 1)[0] if "/" in source.split("://", 1)[1] else source
    return os.path.dirname(os.path.abspath(source))


def inline_files(
    records: list[tuple[int, dict[str, Any]]], source: str
) -> tuple[list[tuple[int, dict[str, Any]]], list[str]]:
    """Records whose `file` names a document get its text as `document` (the path kept as `source_file`), read
    by the document reader with a progress bar; also every `SOURCE:LINE: problem` with such a record (those records
    are left out of the result, so that nothing else reports them again)."""
    from llmops.progress import progress_bar

    base = data_folder(source)
    out: list[tuple[int, dict[str, Any]]] = []
    problems: list[str] = []
    todo = [i for i, (_, record) in enumerate(records) if "file" in record]
    done: dict[int, str] = {}
    failed: dict[int, str] = {}

    def read(i: int) -> None:
        line, record = records[i]
        value = record["file"]
        if "document" in record:
            failed[i] = f'{source}:{line}: give "document" (the text) or "file" (a path), not both'
        elif not isinstance(value, str) or not value.strip():
            failed[i] = f'{source}:{line}: "file" must be a path or URI of a document'
        else:
            try:
                done[i] = document_text(resolve_location(value.strip(), base))
            except DataError as exc:
                failed[i] = f"{source}:{line}: {exc}"

    # OCR runs in tesseract processes: one per core at once.
    with progress_bar(len(todo) > 8) as progress, ThreadPoolExecutor(max(1, os.cpu_count() or 1)) as pool:
        bar = progress.add_task("reading documents", total=len(todo))
        for _ in pool.map(read, todo):
            progress.advance(bar)
    problems.extend(failed[i] for i in sorted(failed))
    for i, (line, record) in enumerate(records):
        if i in failed:
            continue
        if i in done:
            record = {("source_file" if key == "file" else key): value for key, value in record.items()}
            record["document"] = done[i]
        out.append((line, record))
    return out, problems


def char_error_rate(found: str, truth: str) -> float:
    """Character error rate of a reading: Levenshtein distance over the true text's length, both without
    whitespace (so reading order counts, line breaks and spacing do not)."""
    a, b = "".join(found.split()), "".join(truth.split())
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, start=1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1] / max(1, len(b))
