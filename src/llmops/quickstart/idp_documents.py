"""Full-page synthetic invoices, receipts and purchase orders as real PDF files and scans, with gold JSON.

Training documents use the training layouts and training-side values; evaluation documents use the held-out layouts
and held-out values (see `values.SplitValues`), so an evaluation measures extraction on unseen layouts and values.
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from llmops.errors import ConfigError
from llmops.quickstart.doc_layouts import HELD_OUT_LAYOUTS, TRAIN_LAYOUTS
from llmops.quickstart.doc_render import SCAN_FORMATS, render_pdf, scan
from llmops.quickstart.doc_values import (
    CURRENCY,
    REGIONS,
    VAT_RATES,
    Document,
    DocValues,
    gold_fields,
    round_cents,
)

CLASSES = ("invoice", "receipt", "purchase_order")
CURRENCIES = ("EUR", "USD", "GBP", "CHF")
_EXTENSIONS = {"png": "png", "jpeg": "jpg", "pdf": "pdf"}
_NOTES = (500, 1000, 2000, 5000, 10000, 20000, 50000)  # cash tendered, in cents


@dataclass(frozen=True)
class DocumentDataset:
    """Where a generated document dataset lives."""

    root: Path
    train: Path
    eval: Path
    schema: Path
    docs: Path
    sample_document: Path


def document_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of the gold fields of every document class."""
    amount = {"type": "string", "pattern": "^-?[0-9]+\\.[0-9]{2}$"}
    nullable_amount = {"type": ["string", "null"], "pattern": "^-?[0-9]+\\.[0-9]{2}$"}
    nullable_date = {"type": ["string", "null"], "format": "date"}

    def strict(properties: dict[str, Any]) -> dict[str, Any]:
        return {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}

    party = {"name": {"type": "string"}, "address": {"type": "string"}, "tax_id": {"type": ["string", "null"]}}
    item = strict(
        {"description": {"type": "string"}, "quantity": {"type": "number"}, "unit_price": amount, "amount": amount}
    )
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "business_document",
        **strict(
            {
                "document_type": {"enum": list(CLASSES)},
                "document_number": {"type": "string"},
                "issue_date": {"type": "string", "format": "date"},
                "due_date": nullable_date,
                "delivery_date": nullable_date,
                "currency": {"enum": list(CURRENCIES)},
                "seller": strict(party),
                "buyer": {**strict(party), "type": ["object", "null"]},
                "line_items": {"type": "array", "maxItems": 12, "items": item},
                "subtotal": nullable_amount,
                "tax": nullable_amount,
                "total": amount,
            }
        ),
    }


def _item_count(rng: random.Random, kind: str, long: bool) -> int:
    if long:
        return rng.randint(7, 10)
    if kind == "receipt":
        return rng.choices(range(1, 7), weights=(10, 25, 25, 20, 12, 8))[0]
    return rng.choices(range(1, 9), weights=(5, 16, 22, 20, 14, 10, 7, 6))[0]


def build_document(values: DocValues, kind: str, language: str, long: bool = False) -> Document:
    """One document's values: parties, line items, totals that add up, dates, and distractors to print."""
    r = values.rng
    region = r.choice(REGIONS[language])
    issue = values.day()
    receipt, order = kind == "receipt", kind == "purchase_order"
    seller = values.party(region, language, receipt, 0.3 if region == "US" or order else 0.9)
    buyer = None if receipt else values.party(region, language, False, 0.6 if order else 0.35)
    items = values.items(kind, language, _item_count(r, kind, long))
    items_total = sum(i.amount for i in items)
    pct = r.choice((2, 3, 5, 10)) if not receipt and r.random() < 0.12 else 0
    discount = round_cents(Decimal(items_total * pct) / 100)
    goods = any(i.unit == "pc" for i in items)
    shipping = r.randint(490, 4900) if not receipt and goods and r.random() < 0.25 else 0
    rate = r.choice(VAT_RATES[region])
    if receipt and r.random() < 0.5:
        rate = None  # prices include tax; only the total is shown
    net = items_total - discount + shipping
    tax = None if rate is None else round_cents(Decimal(net) * Decimal(rate) / 100)
    days = r.choice((7, 10, 14, 30, 30, 45, 60)) if order or (kind == "invoice" and r.random() < 0.85) else None
    due = issue + timedelta(days) if kind == "invoice" and days else None
    delivery = None
    if kind == "invoice" and r.random() < 0.45:
        delivery = issue - timedelta(r.randint(0, 14))
    elif order and r.random() < 0.7:
        delivery = issue + timedelta(r.randint(5, 40))
    total = net + (tax or 0)
    bank = values.bank(region, language) if kind == "invoice" else None
    register = values.register(region, language) if not receipt and r.random() < 0.8 else None
    customer = r.choice(("", "K-", "C")) + values.digits(r.choice((5, 6))) if not receipt and r.random() < 0.5 else None
    return Document(
        kind=kind,
        language=language,
        region=region,
        number=values.number(kind, language, issue.year),
        issue_date=issue,
        due_date=due,
        delivery_date=delivery,
        currency=CURRENCY[region],
        seller=seller,
        buyer=buyer,
        items=items,
        discount_pct=pct,
        discount=discount,
        shipping=shipping,
        tax_rate=None if rate is None else Decimal(rate),
        subtotal=None if rate is None else net,
        tax=tax,
        total=total,
        payment_days=days,
        customer_number=customer,
        order_reference=values.number("purchase_order", language, issue.year)
        if kind == "invoice" and r.random() < 0.3
        else None,
        iban=bank and bank[1],
        bic=bank and bank[2],
        bank=bank and bank[0],
        register=register,
        director=values.person(language) if register and region != "US" else None,
        contact=values.person(language),
        time=f"{r.randint(7, 21):02d}:{r.randrange(60):02d}",
        paid_by=r.choice(("card", "cash")),
        cash_given=next((n for n in _NOTES if n >= total), total),
        long=long,
    )


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _jsonl(records: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")


def _split(out_dir: Path, split: str, n: int, seed: int, opts: dict[str, Any]) -> list[dict[str, Any]]:
    """Render one split's documents into out_dir/docs; returns their records."""
    held_out = split == "eval"
    layouts = HELD_OUT_LAYOUTS if held_out and opts["held_out_layouts"] else TRAIN_LAYOUTS
    picker = random.Random(f"{seed}-{split}")
    chosen = sorted(picker.sample(range(n), round(n * opts["scan_fraction"])))
    formats = [SCAN_FORMATS[k % len(SCAN_FORMATS)] for k in range(len(chosen))]
    picker.shuffle(formats)  # equal shares of png, jpeg and pdf, not tied to the class cycle
    scanned = dict(zip(chosen, formats))
    records = []
    for i in range(n):
        rng = random.Random(f"{seed}-{split}-{i}")
        kind = opts["classes"][i % len(opts["classes"])]
        language, layout = rng.choice(opts["languages"]), rng.choice(layouts)
        doc = build_document(DocValues(rng, held_out), kind, language, kind == "invoice" and rng.random() < 0.1)
        data, text = render_pdf(doc, layout, language)
        fmt = "pdf"
        if i in scanned:  # single-image formats only for one-page documents
            fmt = "pdf" if "\f" in text else scanned[i]
            data = scan(data, rng, fmt)
        doc_id = f"{split}-{i:04d}"
        name = f"docs/{doc_id}.{_EXTENSIONS[fmt]}"
        _write(out_dir / name, data)
        records.append(
            {
                "id": doc_id,
                "file": name,
                "fields": gold_fields(doc),
                "class": kind,
                "language": language,
                "layout": layout,
                "scanned": i in scanned,
            }
        )
    return records


def _check_options(
    n_train: int, n_eval: int, scan_fraction: float, languages: tuple[str, ...], classes: tuple[str, ...]
) -> None:
    """Raise ConfigError naming the first bad option and its allowed values."""
    if min(n_train, n_eval) < 0:
        raise ConfigError(f"n_train and n_eval must be 0 or more, not {n_train} and {n_eval}")
    if not 0.0 <= scan_fraction <= 1.0:
        raise ConfigError(f"scan_fraction must be between 0 and 1, not {scan_fraction}")
    if not languages or set(languages) - set(REGIONS):
        raise ConfigError(f"languages {list(languages)}: use one or more of {sorted(REGIONS)}")
    if not classes or set(classes) - set(CLASSES):
        raise ConfigError(f"classes {list(classes)}: use one or more of {list(CLASSES)}")


def generate_document_dataset(
    out_dir: Path,
    n_train: int,
    n_eval: int,
    seed: int,
    scan_fraction: float = 0.25,
    languages: tuple[str, ...] = ("en", "de", "fr"),
    classes: tuple[str, ...] = CLASSES,
    held_out_layouts: bool = True,
) -> DocumentDataset:
    """Write docs/*, train.jsonl, eval.jsonl, schema.json and sample_document.pdf under `out_dir`.

    Deterministic from `seed`. `scan_fraction` of each split is scanned (png, jpeg and image-only pdf in equal
    shares; multi-page ones as pdf); without `held_out_layouts`, evaluation documents use the training layouts
    (still with held-out values).
    """
    _check_options(n_train, n_eval, scan_fraction, languages, classes)
    out_dir = Path(out_dir)
    (out_dir / "docs").mkdir(parents=True, exist_ok=True)
    opts = {
        "scan_fraction": scan_fraction,
        "languages": languages,
        "classes": classes,
        "held_out_layouts": held_out_layouts,
    }
    train = _split(out_dir, "train", n_train, seed, opts)
    evals = _split(out_dir, "eval", n_eval, seed, opts)
    _write(out_dir / "train.jsonl", _jsonl(train))
    _write(out_dir / "eval.jsonl", _jsonl(evals))
    _write(out_dir / "schema.json", (json.dumps(document_schema(), indent=2) + "\n").encode("utf-8"))
    rng = random.Random(f"{seed}-sample")
    sample = build_document(DocValues(rng, True), "invoice", languages[0])
    _write(out_dir / "sample_document.pdf", render_pdf(sample, HELD_OUT_LAYOUTS[0], languages[0])[0])
    return DocumentDataset(
        out_dir,
        out_dir / "train.jsonl",
        out_dir / "eval.jsonl",
        out_dir / "schema.json",
        out_dir / "docs",
        out_dir / "sample_document.pdf",
    )
