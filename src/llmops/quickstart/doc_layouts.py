"""Sixteen visual layouts for synthetic invoices, receipts and purchase orders, drawn onto a `Canvas`.

A layout fixes the label wording, the fonts, the date and money styles, the header (letterhead, band, centred,
title first, none), where the parties and the document details sit, the item-table column order and style, the
totals (right, left, boxed, in a sentence) and the footer. Layouts 12-15 are held out: never used for training.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from llmops.quickstart.doc_blocks import (
    PITCH,
    Ctx,
    Look,
    draw_rows,
    header_band,
    header_centered,
    header_letterhead,
    header_title,
    items_table,
    meta_box,
    meta_inline,
    parties_columns,
    parties_stacked,
    parties_window,
    title,
    total_rows,
    totals_left,
    totals_right,
    totals_sentence,
)
from llmops.quickstart.doc_labels import Labels
from llmops.quickstart.doc_values import Document

if TYPE_CHECKING:
    from llmops.quickstart.doc_canvas import Canvas


def payment_block(p: Ctx) -> None:
    """Payment terms, the please-quote line, bank details and a thank-you line."""
    c, doc, lab = p.c, p.doc, p.lab
    lines = [lab("terms", d=doc.payment_days) if doc.payment_days else lab("immediately")]
    if doc.kind == "invoice" and doc.iban:
        lines += [
            f"{lab('bank')}: {doc.bank} · {lab('holder')}: {doc.seller.name}",
            f"IBAN {doc.iban} · BIC {doc.bic} · {lab('reference')}: {doc.number}",
        ]
    lines += [lab(f"quote.{doc.kind}"), lab(f"thanks.{doc.kind}")]
    c.ensure(len(lines) * PITCH + 8)
    c.y = c.block(c.left, c.y + 4, lines, 9.5, PITCH, c.right - c.left)


def letter_intro(p: Ctx) -> None:
    """The salutation and one introductory sentence above the item table."""
    c = p.c
    c.ensure(3 * PITCH)
    lines = [p.lab("salutation"), p.lab(f"intro.{p.doc.kind}")]
    c.y = c.block(c.left, c.y + 1, lines, 9.5, PITCH, c.right - c.left) + 1


def closing(p: Ctx) -> None:
    """A note, the delivery address, the regards, the contact person's name and (some layouts) small print."""
    c, doc = p.c, p.doc
    lines = [p.lab(f"note.{doc.kind}")]
    ship_to = doc.buyer if doc.kind == "purchase_order" or doc.delivery_date else None
    if ship_to:
        lines.append(f"{p.lab('delivery_address')}: {ship_to.name}, {', '.join(ship_to.address)}")
    if not doc.long and not c.fits((len(lines) + 4) * PITCH):
        return  # a one-page document drops its closing rather than spill onto a second page
    c.ensure((len(lines) + 4) * PITCH)
    y = c.block(c.left, c.y + 2, lines, 9.5, PITCH, c.right - c.left)
    c.y = c.block(c.left, y + PITCH, [p.lab("regards"), doc.contact], 9.5, PITCH, c.right - c.left)
    small = ". ".join(p.lab("terms_text").split(". ")[:3]) + "."
    if p.look.number % 2 == 0 and not doc.long and c.fits(len(c.wrap(small, c.right - c.left, 9)) * 4.2 + 3):
        c.y = c.block(c.left, c.y + 3, [small], 9, 4.2, c.right - c.left, gray=80)


def _footer(p: Ctx, columns: list[list[str]], centered: bool, numbers: bool) -> None:
    c = p.c
    width = (c.right - c.left) / (1 if centered else len(columns))
    count = max(sum(len(c.wrap(t, width - 3, 9)) for t in col) for col in columns)
    rule = c.bottom + c.margin - 10 - count * 3.9
    c.bottom = rule - 9

    def draw(canvas: Canvas, page: int, pages: int) -> None:
        canvas.line(c.left, rule, c.right, rule)
        for i, col in enumerate(columns):
            x = c.width / 2 if centered else c.left + i * width
            canvas.block(x, rule + 4.5, col, 9, 3.9, width - 3, "C" if centered else "L", gray=60)
        if numbers:
            canvas.text(c.right, rule - 3, p.lab("page", p=page + 1, n=pages), 9, align="R")

    c.on_every_page(draw)


def _footer_parts(p: Ctx) -> tuple[list[str], list[str], list[str]]:
    doc, who, lab = p.doc, p.issuer, p.lab
    legal = [t for t in (doc.register, doc.director and f"{lab('director')}: {doc.director}") if t]
    bank = [doc.bank or "", f"IBAN {doc.iban}", f"BIC {doc.bic}"] if doc.kind == "invoice" and doc.iban else []
    contact = [f"{lab('phone')} {who.phone}", f"{lab('email')}: {who.email}", who.website, *p.tax(who)]
    return [who.name, *who.address], contact, legal + bank


def footer_columns(p: Ctx, numbers: bool = False) -> None:
    """A legal footer in three columns on every page: issuer, contact and tax id, register and bank."""
    _footer(p, list(_footer_parts(p)), False, numbers)


def footer_centered(p: Ctx, numbers: bool = False) -> None:
    """A legal footer of centred lines on every page."""
    who, contact, legal = _footer_parts(p)
    lines = [f"{who[0]} · {', '.join(who[1:])}", " · ".join(contact), " · ".join(legal)]
    _footer(p, [[t for t in lines if t]], True, numbers)


def page_numbers(p: Ctx) -> None:
    """Only a page number at the bottom right of every page."""
    _footer(p, [[]], False, True)


def terms_page(p: Ctx) -> None:
    """For long documents: the general terms and conditions, on the second page."""
    if p.doc.long:
        c = p.c
        text = c.wrap(p.lab("terms_text"), c.right - c.left, 9.5)
        if c.page == 0:
            c.new_page()
        elif not c.ensure(len(text) * 5 + 20):
            c.y += 6
        c.text(c.left, c.y + 5, p.lab("terms_title"), 12, True)
        c.y = c.block(c.left, c.y + 13, [p.lab("terms_text")], 9.5, 5, c.right - c.left)


def receipt(p: Ctx, centered: bool) -> None:
    """A till receipt on a narrow strip: shop, details, items, totals, payment, notes."""
    c, doc, lab, who = p.c, p.doc, p.lab, p.doc.seller
    x, align, w = (c.width / 2, "C", c.right - c.left) if centered else (c.left, "L", c.right - c.left)
    c.y = c.block(x, c.top + 5, [who.name], 12, 6, w, align, bold_first=True)
    c.y = c.block(x, c.y, [*who.address, f"{lab('phone')} {who.phone}", *p.tax(who)], 9, 4.2, w, align) + 2
    c.text(x, c.y + 3, lab("title.receipt"), 11, True, align, width=w)
    c.y += 9
    details = [
        (lab("number.receipt"), doc.number),
        (lab("date.receipt"), p.date(doc.issue_date)),
        (lab("time"), doc.time),
    ]
    for label, value in details:
        c.text(c.left, c.y, label, 9, width=w / 2)
        c.text(c.right, c.y, value, 9, align="R", width=w / 2 - 2)
        c.y += 4.4
    items_table(p)
    paid = (
        [(lab("card"), p.money(doc.total), False)]
        if doc.paid_by == "card"
        else [
            (lab("cash"), p.money(doc.cash_given), False),
            (lab("change"), p.money(doc.cash_given - doc.total), False),
        ]
    )
    draw_rows(p, total_rows(p) + paid, c.left, c.right - 1, False)
    notes = [lab("vat_included")] if doc.tax is None and doc.region != "US" else []
    c.block(x, c.y + 4, [*notes, lab("thanks.receipt"), lab("quote.receipt"), who.website], 9, 4.4, w, align)


Step = Callable[[Ctx], None]


def _layout(look: Look, steps: tuple[Step, ...], c: Canvas, doc: Document, language: str) -> None:
    p = Ctx(c, doc, look, language, Labels(language, look.number))
    c.family = look.family
    if doc.kind == "receipt":
        c.family = "mono" if look.number % 3 == 0 else look.family
        return receipt(p, centered=look.number % 2 == 0)
    for step in steps:
        step(p)
    closing(p)
    terms_page(p)


def _step_name(step: Step) -> str:
    if isinstance(step, partial):
        return f"{step.func.__name__}({', '.join(f'{k}={v!r}' for k, v in step.keywords.items())})"
    return step.__name__


def _make(number: int, family: str, columns: str, table: str, money: str, *steps: Step) -> Callable[..., None]:
    look = Look(number, family, tuple(columns.split()), table, money)
    names = ", ".join(_step_name(step) for step in steps)

    def layout(c: Canvas, doc: Document, language: str) -> None:
        _layout(look, steps, c, doc, language)

    layout.__name__ = f"layout_{number:02d}"
    layout.__doc__ = f"Layout {number}: {family} font; {names}; columns {columns}; {table} table; {money} amounts."
    return layout


_strip, _window = partial(parties_window, strip=True), partial(parties_window, strip=False)
_boxed, _numbered = partial(totals_right, boxed=True), {"numbers": True}
LAYOUTS: tuple[Callable[[Canvas, Document, str], None], ...] = (
    _make(
        0,
        "sans",
        "desc qty price amount",
        "rules",
        "symbol",
        footer_columns,
        header_letterhead,
        title,
        _strip,
        letter_intro,
        items_table,
        totals_right,
        payment_block,
    ),
    _make(
        1,
        "cond",
        "pos desc qty unit price amount",
        "band",
        "code",
        partial(footer_centered, **_numbered),
        partial(header_band, fill=55),
        partial(parties_columns, recipient_first=False),
        meta_box,
        items_table,
        _boxed,
        payment_block,
    ),
    _make(
        2,
        "serif",
        "qty desc price amount",
        "grid",
        "symbol",
        footer_columns,
        header_centered,
        partial(title, align="C"),
        meta_inline,
        parties_stacked,
        letter_intro,
        items_table,
        totals_sentence,
        payment_block,
    ),
    _make(
        3,
        "sans",
        "desc amount qty price",
        "zebra",
        "plain",
        footer_centered,
        header_title,
        _window,
        letter_intro,
        items_table,
        totals_left,
        payment_block,
    ),
    _make(
        4,
        "sans",
        "pos qty unit desc price amount",
        "rules",
        "code",
        partial(footer_columns, **_numbered),
        title,
        _strip,
        letter_intro,
        items_table,
        _boxed,
        payment_block,
    ),
    _make(
        5,
        "cond",
        "desc qty unit price amount",
        "grid",
        "symbol",
        footer_centered,
        header_letterhead,
        partial(title, align="R"),
        meta_box,
        parties_stacked,
        letter_intro,
        items_table,
        totals_right,
        payment_block,
    ),
    _make(
        6,
        "serif",
        "pos desc price qty amount",
        "zebra",
        "code",
        footer_columns,
        partial(header_band, fill=225),
        _strip,
        letter_intro,
        items_table,
        totals_sentence,
        payment_block,
    ),
    _make(
        7,
        "sans",
        "desc price qty amount",
        "band",
        "plain",
        footer_centered,
        header_centered,
        title,
        partial(parties_columns, recipient_first=False),
        meta_inline,
        items_table,
        _boxed,
        payment_block,
    ),
    _make(
        8,
        "cond",
        "pos desc qty price amount",
        "rules",
        "symbol",
        footer_columns,
        header_title,
        meta_box,
        parties_stacked,
        letter_intro,
        items_table,
        totals_left,
        payment_block,
    ),
    _make(
        9,
        "serif",
        "qty desc unit price amount",
        "grid",
        "code",
        page_numbers,
        header_letterhead,
        title,
        meta_inline,
        parties_stacked,
        letter_intro,
        items_table,
        totals_right,
        payment_block,
    ),
    _make(
        10,
        "sans",
        "desc unit qty price amount",
        "rules",
        "symbol",
        footer_columns,
        partial(header_band, fill=40),
        _window,
        letter_intro,
        items_table,
        totals_sentence,
        payment_block,
    ),
    _make(
        11,
        "cond",
        "pos qty desc price amount",
        "zebra",
        "plain",
        partial(footer_centered, **_numbered),
        partial(title, align="C"),
        meta_box,
        partial(parties_columns, recipient_first=False),
        items_table,
        _boxed,
        payment_block,
    ),
    _make(
        12,
        "serif",
        "pos desc unit qty price amount",
        "band",
        "code",
        footer_columns,
        header_centered,
        partial(title, align="R"),
        _strip,
        letter_intro,
        items_table,
        totals_left,
        payment_block,
    ),
    _make(
        13,
        "sans",
        "qty price desc amount",
        "grid",
        "symbol",
        footer_centered,
        title,
        partial(parties_columns, recipient_first=True),
        meta_inline,
        letter_intro,
        items_table,
        totals_sentence,
        payment_block,
    ),
    _make(
        14,
        "cond",
        "pos desc amount qty price",
        "rules",
        "plain",
        partial(footer_columns, **_numbered),
        partial(header_band, fill=230),
        meta_inline,
        parties_stacked,
        items_table,
        _boxed,
        payment_block,
    ),
    _make(
        15,
        "serif",
        "desc price unit qty amount",
        "zebra",
        "symbol",
        footer_centered,
        title,
        meta_box,
        partial(parties_columns, recipient_first=False),
        letter_intro,
        items_table,
        totals_right,
        payment_block,
    ),
)
TRAIN_LAYOUTS = tuple(range(12))
HELD_OUT_LAYOUTS = tuple(range(12, len(LAYOUTS)))
