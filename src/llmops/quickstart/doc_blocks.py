"""Drawing blocks of synthetic business documents: headers, parties, document details, item table, totals.

Each block draws one part of a page onto a `Canvas` at its flow cursor `c.y` (the next baseline) and moves it on.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

from llmops.quickstart.doc_labels import DATE_STYLES, Labels, format_date, format_decimal, format_money
from llmops.quickstart.doc_values import Document, LineItem, Party

if TYPE_CHECKING:
    from llmops.quickstart.doc_canvas import Canvas

PITCH = 4.6  # body line pitch in mm (9.5 pt text)
NBSP = "\u00a0"  # holds an amount together when a sentence is wrapped
_WIDTHS = {"pos": 12.0, "qty": 18.0, "unit": 17.0, "price": 28.0, "amount": 29.0}
_NARROW = {"qty": 10.0, "price": 19.0, "amount": 20.0}  # receipts: no header row, no position or unit column


@dataclass(frozen=True)
class Look:
    """One layout's choices: wording variant, font family, item columns, table style, money style."""

    number: int
    family: str
    columns: tuple[str, ...]
    table: str  # "rules", "grid", "zebra" or "band"
    money: str  # "symbol", "code" or "plain" (item-table amounts without currency)


@dataclass(frozen=True)
class Ctx:
    """What every drawing step needs: the canvas, the document, the layout's look and the labels."""

    c: Canvas
    doc: Document
    look: Look
    lang: str
    lab: Labels

    def money(self, cents: int, cell: bool = False) -> str:
        """An amount as this layout prints it (item cells may omit the currency)."""
        style = self.look.money if cell or self.look.money != "plain" else "code"
        style = "plain" if cell and self.doc.kind == "receipt" else style
        return format_money(cents, self.doc.currency, self.lang, style)

    def date(self, day: date) -> str:
        """A date in this layout's style for the language."""
        styles = DATE_STYLES[self.lang]
        return format_date(day, self.lang, styles[self.look.number % len(styles)])

    @property
    def issuer(self) -> Party:
        """The party whose letterhead it is: the seller, or the buyer for a purchase order."""
        return self.doc.buyer if self.doc.kind == "purchase_order" and self.doc.buyer else self.doc.seller

    @property
    def recipient(self) -> Party | None:
        """The addressee: the buyer, or the supplier (seller) for a purchase order."""
        return self.doc.seller if self.doc.kind == "purchase_order" else self.doc.buyer

    def tax(self, party: Party) -> list[str]:
        """The party's tax-id line, when it has one."""
        key = "tax_id.US" if self.doc.region == "US" and self.lang == "en" else "tax_id"
        return [] if party.tax_id is None else [f"{self.lab(key)} {party.tax_id}"]


def meta_rows(p: Ctx) -> list[tuple[str, str]]:
    """The document details as (label, value): number, dates, customer number, order reference, contact."""
    doc, kind = p.doc, p.doc.kind
    rows = [(p.lab(f"number.{kind}"), doc.number), (p.lab(f"date.{kind}"), p.date(doc.issue_date))]
    if doc.due_date:
        rows.append((p.lab("due"), p.date(doc.due_date)))
    if doc.delivery_date:
        rows.append((p.lab(f"delivery.{kind}"), p.date(doc.delivery_date)))
    if doc.customer_number:
        rows.append((p.lab(f"customer.{kind}"), doc.customer_number))
    if doc.order_reference:
        rows.append((p.lab("order_ref"), doc.order_reference))
    return rows + [(p.lab("contact"), doc.contact)]


def header_letterhead(p: Ctx) -> None:
    """Issuer name large on the left, address and contact right-aligned on the right."""
    c, who = p.c, p.issuer
    c.text(c.left, c.top + 6, who.name, 14, True, width=104)
    lines = [*who.address, f"{p.lab('phone')} {who.phone}", who.email, who.website, *p.tax(who)]
    c.y = c.block(c.right, c.top + 6, lines, 9, PITCH, 62, align="R") + 4


def header_band(p: Ctx, fill: int) -> None:
    """A full-width band with the issuer name and the title; the issuer's address on one line below."""
    c, who = p.c, p.issuer
    c.rect(0, 0, c.width, 30, fill=fill)
    gray = 255 if fill < 128 else 0
    c.text(c.left, 18, who.name, 15, True, width=110, gray=gray)
    c.text(c.right, 18, p.lab(f"title.{p.doc.kind}"), 15, True, "R", width=58, gray=gray)
    lines = [", ".join(who.address), " · ".join([f"{p.lab('phone')} {who.phone}", who.email, *p.tax(who)])]
    c.y = c.block(c.left, 37, lines, 9, 4.2, c.right - c.left) + 4


def header_centered(p: Ctx) -> None:
    """Issuer name centred, address and contact centred below, a rule."""
    c, who, mid = p.c, p.issuer, p.c.width / 2
    c.text(mid, c.top + 6, who.name, 15, True, "C", width=c.right - c.left)
    lines = [", ".join(who.address), " · ".join([f"{p.lab('phone')} {who.phone}", who.email, *p.tax(who)])]
    y = c.block(mid, c.top + 12, lines, 9, 4.2, c.right - c.left, align="C")
    c.line(c.left, y - 1.8, c.right, y - 1.8)
    c.y = y + 4


def header_title(p: Ctx) -> None:
    """The document title large on the left, the issuer block on the right."""
    c, who = p.c, p.issuer
    c.text(c.left, c.top + 9, p.lab(f"title.{p.doc.kind}"), 18, True, width=90)
    lines = [who.name, *who.address, *p.tax(who), f"{p.lab('phone')} {who.phone}"]
    c.y = c.block(c.left + 112, c.top + 9, lines, 9.5, PITCH, 62, bold_first=True) + 4


def title(p: Ctx, align: str = "L") -> None:
    """The document title ("INVOICE", "Rechnung", ...)."""
    c = p.c
    x = {"L": c.left, "C": c.width / 2, "R": c.right}[align]
    c.text(x, c.y + 5, p.lab(f"title.{p.doc.kind}"), 16, True, align, width=c.right - c.left)
    c.y += 12


def meta_table(p: Ctx, x: float, y: float, width: float) -> float:
    """Document details as label / right-aligned value rows; returns the baseline after the last."""
    for label, value in meta_rows(p):
        p.c.text(x, y, label, 9.5, width=width - 40)
        p.c.text(x + width, y, value, 9.5, align="R", width=38)
        y += PITCH
    return y


def meta_box(p: Ctx) -> None:
    """Document details as a boxed row: labels on a shaded line, values below."""
    c, rows = p.c, meta_rows(p)[:5]
    w, y = (c.right - c.left) / len(rows), c.y
    c.rect(c.left, y, c.right - c.left, 6.5, fill=232)
    c.rect(c.left, y, c.right - c.left, 13)
    for i, (label, value) in enumerate(rows):
        c.text(c.left + i * w + 2, y + 4.6, label, 9, True, width=w - 4, family="cond")
        c.text(c.left + i * w + 2, y + 11, value, 9.5, width=w - 4, family="cond")
    c.y = y + 19


def meta_inline(p: Ctx) -> None:
    """Document details as "Label: value" pairs, two per line."""
    c, rows = p.c, meta_rows(p)
    half = (c.right - c.left) / 2
    for i, (label, value) in enumerate(rows):
        c.text(c.left + (i % 2) * half, c.y + (i // 2) * PITCH, f"{label}: {value}", 9.5, width=half - 4)
    c.y += (len(rows) + 1) // 2 * PITCH + 3


def _party(p: Ctx, x: float, y: float, party: Party, heading: str | None, width: float, contact: bool) -> float:
    if heading:
        p.c.text(x, y, heading, 9, True, width=width, gray=90)
        y += PITCH
    lines = [party.name, *party.address, *p.tax(party)]
    lines += [f"{p.lab('phone')} {party.phone}", party.email] if contact else []
    return p.c.block(x, y, lines, 9.5, PITCH, width, bold_first=True)


def parties_window(p: Ctx, strip: bool) -> None:
    """Window-envelope style: (return-address strip and) recipient on the left, document details on the right."""
    c, who, top = p.c, p.issuer, p.c.y
    y = top
    if strip:
        options = [f"{who.name} · {who.address[0]} · {who.address[-1]}", f"{who.address[0]} · {who.address[-1]}"]
        text = next((t for t in options if c.measure(t, 8) <= 92), who.address[-1])
        c.text(c.left, y, text, 9, width=92, gray=70)
        c.line(c.left, y + 1.3, c.left + 92, y + 1.3)
        y += 2 * PITCH
    heading = p.lab(f"to.{p.doc.kind}") if p.look.number % 2 else None
    end = _party(p, c.left, y, p.recipient, heading, 92, False) if p.recipient else y
    c.y = max(end, meta_table(p, c.right - 76, top, 76)) + 4


def parties_columns(p: Ctx, recipient_first: bool) -> None:
    """Two labelled blocks side by side: the issuer ("From") and the recipient ("Bill to")."""
    c, kind = p.c, p.doc.kind
    blocks = [(p.lab(f"from.{kind}"), p.issuer, True), (p.lab(f"to.{kind}"), p.recipient, False)]
    blocks = blocks[::-1] if recipient_first else blocks
    half = (c.right - c.left) / 2
    ends = [
        _party(p, c.left + i * half, c.y, party, heading, half - 6, contact)
        for i, (heading, party, contact) in enumerate(blocks)
        if party
    ]
    c.y = max(ends) + 3


def parties_stacked(p: Ctx) -> None:
    """The recipient block alone, on the left."""
    if p.recipient:
        p.c.y = _party(p, p.c.left, p.c.y, p.recipient, p.lab(f"to.{p.doc.kind}"), 100, False) + 3


def _cell(p: Ctx, key: str, index: int, item: LineItem) -> str:
    qty = format_decimal(item.quantity, p.lang) + (" x" if p.doc.kind == "receipt" else "")
    return {
        "pos": str(index + 1),
        "desc": item.description,
        "qty": qty,
        "unit": p.lab(f"unit.{item.unit}"),
        "price": p.money(item.unit_price, True),
        "amount": p.money(item.amount, True),
    }[key]


def items_table(p: Ctx) -> None:
    """The line-item table in the layout's column order and style; repeats its header after a page break."""
    c, look, narrow = p.c, p.look, p.doc.kind == "receipt"
    keys = [k for k in look.columns if not narrow or k in _NARROW or k == "desc"]
    widths = _NARROW if narrow else _WIDTHS
    desc = c.right - c.left - sum(widths[k] for k in keys if k != "desc")
    spans, x = [], c.left
    for key in keys:
        spans.append((key, x, desc if key == "desc" else widths[key]))
        x += spans[-1][2]
    row = 6.4

    def cells(y: float, texts: list[str], bold: bool, gray: int, height: float = row) -> None:
        for (key, x0, w), text in zip(spans, texts):
            left = key in ("desc", "unit")
            c.text(x0 + 1.5 if left else x0 + w - 1.5, y + 4.4, text, 9.5, bold, "L" if left else "R", w - 3, gray)
            if look.table == "grid":
                c.rect(x0, y, w, height)

    def header() -> None:
        fill = {"zebra": 215, "band": 70}.get(look.table)
        if fill is not None:
            c.rect(c.left, c.y, c.right - c.left, row, fill=fill)
        cells(c.y, [p.lab(k) for k, _, _ in spans], True, 255 if fill == 70 else 0)
        if look.table == "rules":
            c.line(c.left, c.y, c.right, c.y)
            c.line(c.left, c.y + row, c.right, c.y + row)
        c.y += row

    if look.money == "plain":
        c.text(c.right, c.y, p.lab("currency_note", c=p.doc.currency), 9, align="R")
        c.y += 3
    if not narrow:
        header()
    for i, item in enumerate(p.doc.items):
        article = not narrow and look.number % 3 == 1 and item.unit == "pc"  # an article-number line under it
        height = row + 4 if article else row
        if c.ensure(height):
            header()
        if look.table == "zebra" and i % 2:
            c.rect(c.left, c.y, c.right - c.left, height, fill=243)
        cells(c.y, [_cell(p, k, i, item) for k, _, _ in spans], False, 0, height)
        if article:
            number = 10000 + zlib.crc32(item.description.encode()) % 90000
            x0 = next(x for k, x, _ in spans if k == "desc")
            c.text(x0 + 1.5, c.y + 8.6, f"{p.lab('article')} {number}", 9, gray=90, width=desc - 3)
        c.y += height
    c.line(c.left, c.y, c.right, c.y)
    c.y += 4


def total_rows(p: Ctx) -> list[tuple[str, str, bool]]:
    """The totals as (label, amount, bold): items total, discount, shipping, subtotal, tax, total."""
    doc, lab = p.doc, p.lab
    rows = []
    if doc.discount or doc.shipping:
        rows.append((lab("items_total"), p.money(doc.items_total), False))
    if doc.discount:
        rows.append((lab("discount", p=doc.discount_pct), p.money(-doc.discount), False))
    if doc.shipping:
        rows.append((lab("shipping"), p.money(doc.shipping), False))
    if doc.subtotal is not None:
        rows.append((lab("subtotal"), p.money(doc.subtotal), False))
    if doc.tax is not None and doc.tax_rate is not None:
        key = "sales_tax" if doc.region == "US" and p.lang == "en" else "vat"
        rows.append((lab(key, r=format_decimal(doc.tax_rate, p.lang)), p.money(doc.tax), False))
    rows.append((lab(f"total.{doc.kind}"), p.money(doc.total), True))
    return rows


def draw_rows(p: Ctx, rows: list[tuple[str, str, bool]], x_label: float, x_value: float, boxed: bool) -> None:
    """Label / right-aligned amount rows, optionally in a box with the last row shaded."""
    c, step = p.c, 5.6
    c.ensure(len(rows) * step + 6)
    if boxed:
        c.rect(x_label - 3, c.y, x_value - x_label + 5, len(rows) * step + 2.5)
        c.rect(x_label - 3, c.y + (len(rows) - 1) * step + 0.6, x_value - x_label + 5, step + 1.9, fill=228)
    y = c.y + 4.6
    for label, value, strong in rows:
        size = 10.5 if strong else 9.5
        c.text(x_label, y, label, size, strong, width=min(52.0, x_value - x_label - 35))
        c.text(x_value, y, value, size, strong, "R", width=33)
        y += step
    c.y = y + 1


def totals_right(p: Ctx, boxed: bool = False) -> None:
    """Discount, shipping, subtotal, tax and total rows right-aligned under the table (optionally boxed)."""
    draw_rows(p, total_rows(p), p.c.right - 86, p.c.right - 2, boxed)


def totals_left(p: Ctx) -> None:
    """The total rows on the left under the table."""
    draw_rows(p, total_rows(p), p.c.left, p.c.left + 92, False)


def totals_sentence(p: Ctx) -> None:
    """Subtotal and tax rows, then the total inside a sentence ("Please pay EUR 1,234.56 by ...")."""
    doc, c = p.doc, p.c
    if doc.kind == "invoice" and doc.due_date is None:
        return totals_right(p)
    rows = total_rows(p)[:-1]
    if rows:
        draw_rows(p, rows, c.right - 86, c.right - 2, False)
    due = p.date(doc.due_date) if doc.due_date else ""
    text = p.lab(f"sentence.{doc.kind}", amount=p.money(doc.total).replace(" ", NBSP), date=due, number=doc.number)
    c.ensure(3 * PITCH)
    c.y = c.block(c.left, c.y + 3, [text], 10, 5, c.right - c.left) + 1
