"""The drawing surface of the synthetic documents: text runs and shapes in mm, written to a PDF in reading order
(fpdf2, DejaVu fonts: the system's where it has every family used, else the copies matplotlib ships)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from fpdf import FPDF


def _font_dir() -> Path:
    """The DejaVu font folder: the system's (Debian's fonts-dejavu) when complete, else matplotlib's copies."""
    system = Path("/usr/share/fonts/truetype/dejavu")
    if all((system / f"{stem}.ttf").is_file() for stem in _FAMILIES.values()):
        return system
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


_FAMILIES = {"sans": "DejaVuSans", "cond": "DejaVuSansCondensed", "serif": "DejaVuSerif", "mono": "DejaVuSansMono"}
MIN_SIZE = 8.0  # points; text that does not fit its width is shrunk down to this size, then wrapped
_PT = 25.4 / 72  # millimetres per point


@dataclass(frozen=True)
class _Run:
    x: float
    y: float  # baseline
    text: str
    family: str
    bold: bool
    size: float
    width: float
    gray: int


@dataclass(frozen=True)
class _Shape:
    kind: str  # "rect" or "line"
    box: tuple[float, float, float, float]  # rect: x, y, w, h; line: x1, y1, x2, y2
    fill: int | None  # gray level of a filled rect; None draws an outline


class Canvas:
    """Pages of text runs and shapes in mm (y downwards, text at its baseline), written out in reading order.

    Layouts draw with `text`, `block`, `rect` and `line` and keep a flow cursor in `y`; `ensure` starts a new page
    when a block would cross `bottom`. Nothing reaches the PDF until `finish`, which checks that no two runs overlap
    and that every run is on the page, then writes the shapes and the runs sorted by (baseline, x).
    """

    def __init__(self, width: float, height: float | None, margin: float, font_dir: Path | None = None) -> None:
        self.width, self.height, self.margin = width, height, margin
        self.left, self.right, self.top = margin, width - margin, margin
        self.bottom = (height or 10_000.0) - margin
        self.family, self.y, self.page = "sans", margin, 0
        self._runs: list[list[_Run]] = [[]]
        self._shapes: list[list[_Shape]] = [[]]
        self._hooks: list[Callable[[Canvas, int, int], None]] = []
        self._pdf = FPDF(unit="mm")
        self._font_dir, self._fonts = font_dir or _font_dir(), set[tuple[str, bool]]()

    def _use(self, family: str, bold: bool, size: float) -> None:
        if (family, bold) not in self._fonts:
            stem = _FAMILIES[family] + ("-Bold" if bold else "")
            if not (self._font_dir / f"{stem}.ttf").is_file():  # matplotlib ships no condensed face
                stem = _FAMILIES["sans"] + ("-Bold" if bold else "")
            self._pdf.add_font(family, "B" if bold else "", str(self._font_dir / f"{stem}.ttf"))
            self._fonts.add((family, bold))
        self._pdf.set_font(family, "B" if bold else "", size)

    def measure(self, text: str, size: float, bold: bool = False, family: str | None = None) -> float:
        """Width of `text` in mm."""
        self._use(family or self.family, bold, size)
        return float(self._pdf.get_string_width(text))

    def text(
        self,
        x: float,
        y: float,
        text: str,
        size: float = 9.5,
        bold: bool = False,
        align: str = "L",
        width: float | None = None,
        gray: int = 0,
        family: str | None = None,
    ) -> float:
        """Draw one run at baseline `y`; `x` is its left, right ("R") or centre ("C"); shrinks to fit `width`."""
        family = family or self.family
        w = self.measure(text, size, bold, family)
        while width is not None and w > width and size > MIN_SIZE:
            size = max(MIN_SIZE, size - 0.5)
            w = self.measure(text, size, bold, family)
        if width is not None and w > width + 0.01:
            raise ValueError(f"text {text!r} is {w:.1f} mm wide, more than its {width:.1f} mm")
        x0 = x - w if align == "R" else x - w / 2 if align == "C" else x
        if x0 < 0 or x0 + w > self.width:
            raise ValueError(f"text {text!r} runs off the page")
        self._runs[self.page].append(_Run(x0, y, text, family, bold, size, w, gray))
        return w

    def wrap(self, text: str, width: float, size: float, bold: bool = False, family: str | None = None) -> list[str]:
        """Split `text` at spaces into lines no wider than `width` (no-break spaces hold words together)."""
        lines: list[str] = []
        for word in text.split(" "):
            if lines and self.measure(f"{lines[-1]} {word}", size, bold, family) <= width:
                lines[-1] = f"{lines[-1]} {word}"
            else:
                lines.append(word)
        return lines

    def block(
        self,
        x: float,
        y: float,
        lines: list[str],
        size: float,
        pitch: float,
        width: float,
        align: str = "L",
        bold_first: bool = False,
        family: str | None = None,
        gray: int = 0,
    ) -> float:
        """Draw lines (each wrapped to `width`) from baseline `y` down; returns the baseline after the last."""
        for i, line in enumerate(lines):
            bold = bold_first and i == 0
            for part in self.wrap(line, width, size, bold, family):
                self.text(x, y, part.replace("\u00a0", " "), size, bold, align, width, gray, family)
                y += pitch
        return y

    def rect(self, x: float, y: float, w: float, h: float, fill: int | None = None) -> None:
        """A rectangle: filled with gray level `fill`, or outlined."""
        self._shapes[self.page].append(_Shape("rect", (x, y, w, h), fill))

    def line(self, x1: float, y1: float, x2: float, y2: float) -> None:
        """A thin rule."""
        self._shapes[self.page].append(_Shape("line", (x1, y1, x2, y2), None))

    def new_page(self) -> None:
        """Continue on a new page, cursor at the top margin."""
        self._runs.append([])
        self._shapes.append([])
        self.page, self.y = len(self._runs) - 1, self.top

    def fits(self, height: float) -> bool:
        """Whether `height` mm fit between the cursor and `bottom` on this page."""
        return self.height is None or self.y + height <= self.bottom

    def ensure(self, height: float) -> bool:
        """Start a new page unless `height` mm fit between the cursor and `bottom`; True when it did."""
        if self.fits(height):
            return False
        self.new_page()
        return True

    def on_every_page(self, hook: Callable[[Canvas, int, int], None]) -> None:
        """Have `hook(canvas, page, pages)` draw on every page (footers, page numbers) when the document is done."""
        self._hooks.append(hook)

    def finish(self, when: datetime) -> tuple[bytes, str]:
        """The PDF bytes and the true text (see `render_pdf`)."""
        pages = len(self._runs)
        for hook in self._hooks:
            for page in range(pages):
                self.page = page
                hook(self, page, pages)
        runs = [r for page in self._runs for r in page]
        height = self.height or max(r.y for r in runs) + self.margin
        pdf = self._pdf
        pdf.set_auto_page_break(False)
        pdf.set_creation_date(when)
        texts = []
        for page in range(pages):
            ordered = sorted(self._runs[page], key=lambda r: (round(r.y, 2), r.x))
            _check_layout(ordered, self.width, height)
            pdf.add_page(format=(self.width, height))
            for shape in self._shapes[page]:
                _draw_shape(pdf, shape)
            lines: dict[float, list[_Run]] = {}
            for run in ordered:
                self._use(run.family, run.bold, run.size)
                pdf.set_text_color(run.gray)
                pdf.text(run.x, run.y, run.text)
                lines.setdefault(round(run.y, 2), []).append(run)
            _check_line_gaps(list(lines.values()))
            texts.append("\n".join(" ".join(run.text for run in line) for line in lines.values()))
        return bytes(pdf.output()), "\n\f\n".join(texts)


def _draw_shape(pdf: FPDF, shape: _Shape) -> None:
    pdf.set_draw_color(120)
    pdf.set_line_width(0.25)
    if shape.kind == "line":
        pdf.line(*shape.box)
    elif shape.fill is None:
        pdf.rect(*shape.box)
    else:
        pdf.set_fill_color(shape.fill)
        pdf.rect(*shape.box, style="F")


def _check_layout(runs: list[_Run], width: float, height: float) -> None:
    """Raise ValueError when a run leaves the page or two runs overlap."""
    boxes = sorted((r.y - 0.8 * r.size * _PT, r.x, r.y + 0.22 * r.size * _PT, r.x + r.width, r.text) for r in runs)
    for i, (y0, x0, y1, x1, text) in enumerate(boxes):
        if x0 < 0 or y0 < 0 or x1 > width or y1 > height:
            raise ValueError(f"text {text!r} runs off the page")
        for v0, u0, _, u1, other in boxes[i + 1 :]:
            if v0 >= y1:
                break
            if x0 < u1 - 0.2 and u0 < x1 - 0.2:
                raise ValueError(f"texts {text!r} and {other!r} overlap")


def _check_line_gaps(lines: list[list[_Run]]) -> None:
    """Raise ValueError when two successive baselines are so close that a PDF reader would merge the lines.

    PDFium treats a text object as part of the previous line when the baselines differ by less than about half a
    character width, and then orders the line's objects by x; lines must therefore be equal or clearly apart.
    """
    for upper, lower in zip(lines, lines[1:]):
        gap = lower[0].y - upper[0].y
        if gap < 0.6 * max(r.size for r in upper + lower) * _PT:
            raise ValueError(f"lines {upper[0].text!r} and {lower[0].text!r} are only {gap:.1f} mm apart")
