"""Synthetic IDP documents (invoices, receipts, purchase orders) with gold JSON, for the offline quickstart.

Held-out examples use values never seen in training, drawn from the same distribution: every value (company
name stem, document number, date, amount) goes to the training or the held-out side by a hash of its text.
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from llmops.quickstart.values import SplitValues

CLASSES = ("invoice", "receipt", "purchase_order")
CURRENCIES = ("EUR", "USD", "GBP", "CHF")
PAYMENTS = ("cash", "card", "mobile")
_ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "tr", "st", "gr", "ch")
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ou")
_CODAS = ("", "", "", "n", "r", "s", "x", "l")
_WORDS = ("Trading", "Systems", "Foods", "Logistics", "Supplies", "Partners", "Works", "Labs", "Textiles")
_SUFFIXES = ("Ltd", "GmbH", "Inc", "LLC", "AG", "& Co")
_SHOPS = ("Market", "Cafe", "Pharmacy", "Bakery", "Hardware", "Books")

_STR = {"type": "string"}
_DATE = {"type": "string", "format": "date"}
_AMOUNT = {"type": "string", "pattern": "^[0-9]+\\.[0-9]{2}$"}
_FIELDS: dict[str, dict[str, dict[str, Any]]] = {
    "invoice": {
        "invoice_number": _STR,
        "invoice_date": _DATE,
        "vendor_name": _STR,
        "total_amount": _AMOUNT,
        "currency": {"enum": list(CURRENCIES)},
    },
    "receipt": {
        "merchant_name": _STR,
        "receipt_date": _DATE,
        "total_amount": _AMOUNT,
        "currency": {"enum": list(CURRENCIES)},
        "payment_method": {"enum": list(PAYMENTS)},
    },
    "purchase_order": {
        "po_number": _STR,
        "order_date": _DATE,
        "supplier_name": _STR,
        "total_amount": _AMOUNT,
        "currency": {"enum": list(CURRENCIES)},
    },
}


@dataclass(frozen=True)
class IdpDataset:
    """Where a generated quickstart dataset lives."""

    root: Path
    train: Path
    eval: Path
    schema: Path
    class_schemas: dict[str, Path]
    sample_document: Path


def class_schema(cls: str) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of one document class's fields."""
    fields = _FIELDS[cls]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": cls,
        "type": "object",
        "properties": {"document_type": {"const": cls}, **fields},
        "required": ["document_type", *fields],
        "additionalProperties": False,
    }


def combined_schema() -> dict[str, Any]:
    """The one schema the quickstart puts in every prompt: every class's field names, kept short (it costs tokens)."""
    props: dict[str, Any] = {"document_type": {"enum": list(CLASSES)}}
    for fields in _FIELDS.values():
        props.update({name: {} for name in fields})
    return {"type": "object", "properties": props, "required": ["document_type"], "additionalProperties": False}


class _Values(SplitValues):
    """Draws field values from the training side or the held-out side of each value's hash split."""

    def stem(self) -> str:
        return self.syllables(_ONSETS, _VOWELS, _CODAS)

    def company(self) -> str:
        r = self.rng
        words = [self.stem()] + ([r.choice(_WORDS)] if r.random() < 0.6 else []) + [r.choice(_SUFFIXES)]
        return " ".join(words)

    def shop(self) -> str:
        return f"{self.stem()} {self.rng.choice(_SHOPS)}"

    def number(self, prefix: str, digits: int) -> str:
        return self._draw(lambda: prefix + "".join(self.rng.choice("0123456789") for _ in range(digits)))

    def day(self) -> date:
        start = date(2021, 1, 1)
        return date.fromisoformat(self._draw(lambda: (start + timedelta(self.rng.randrange(1800))).isoformat()))

    def amount(self, low: int = 5, high: int = 5000) -> str:
        return self._draw(lambda: f"{self.rng.randint(low, high)}.{self.rng.randrange(100):02d}")


def _money(amount: str) -> int:
    whole, cents = amount.split(".")
    return int(whole) * 100 + int(cents)


def _fmt(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


Line = tuple[str, bool]  # (text, carries a labelled field)


def _invoice(v: _Values, layout: int) -> tuple[list[Line], dict[str, Any]]:
    r = v.rng
    f = {
        "invoice_number": v.number(r.choice(("INV-", "IN")), 5),
        "invoice_date": v.day().isoformat(),
        "vendor_name": v.company(),
        "total_amount": v.amount(),
        "currency": r.choice(CURRENCIES),
    }
    total = _money(f["total_amount"])
    tax = total * r.choice((0, 7, 19, 20)) // 120
    due = (date.fromisoformat(f["invoice_date"]) + timedelta(r.choice((14, 30)))).isoformat()
    if layout == 0:
        lines = [
            ("INVOICE", True),
            (f"Invoice No: {f['invoice_number']}", True),
            (f"Date: {f['invoice_date']}", True),
            (f"From: {f['vendor_name']}", True),
            (f"Bill to: {v.company()}", False),
            (f"Tax: {_fmt(tax)}", False),
            (f"Total: {f['total_amount']} {f['currency']}", True),
        ]
    else:
        lines = [
            (f["vendor_name"], True),
            (f"Tax Invoice {f['invoice_number']}", True),
            (f"Issued {f['invoice_date']} | Due {due}", True),
            (f"Subtotal {_fmt(total - tax)} | VAT {_fmt(tax)}", False),
            (f"Amount due: {f['currency']} {f['total_amount']}", True),
        ]
    return lines, f


def _receipt(v: _Values, layout: int) -> tuple[list[Line], dict[str, Any]]:
    r = v.rng
    f = {
        "merchant_name": v.shop(),
        "receipt_date": v.day().isoformat(),
        "total_amount": v.amount(1, 300),
        "currency": r.choice(CURRENCIES),
        "payment_method": r.choice(PAYMENTS),
    }
    items = [
        (f"{r.choice(('Tea', 'Bread', 'Soap', 'Pens', 'Rice', 'Milk'))} x{r.randint(1, 4)} {v.amount(1, 40)}", False)
        for _ in range(r.randint(1, 2))
    ]
    if layout == 0:
        lines = [
            (f["merchant_name"], True),
            (f"Receipt {f['receipt_date']}", True),
            *items,
            (f"TOTAL {f['total_amount']} {f['currency']}", True),
            (f"Paid: {f['payment_method']}", True),
        ]
    else:
        lines = [
            ("RECEIPT", True),
            (f"Store: {f['merchant_name']}", True),
            (f"Date: {f['receipt_date']}", True),
            *items,
            (f"Payment: {f['payment_method']}", True),
            (f"Total ({f['currency']}): {f['total_amount']}", True),
        ]
    return lines, f


def _purchase_order(v: _Values, layout: int) -> tuple[list[Line], dict[str, Any]]:
    r = v.rng
    f = {
        "po_number": v.number("PO-", 6),
        "order_date": v.day().isoformat(),
        "supplier_name": v.company(),
        "total_amount": v.amount(),
        "currency": r.choice(CURRENCIES),
    }
    buyer = v.company()
    if layout == 0:
        lines = [
            ("PURCHASE ORDER", True),
            (f"PO: {f['po_number']}", True),
            (f"Buyer: {buyer}", False),
            (f"Supplier: {f['supplier_name']}", True),
            (f"Order date: {f['order_date']}", True),
            (f"Total: {f['total_amount']} {f['currency']}", True),
        ]
    else:
        lines = [
            (f"Purchase Order {f['po_number']} ({f['order_date']})", True),
            (f"Ship to: {buyer}", False),
            (f"Vendor: {f['supplier_name']}", True),
            (f"Order total: {f['currency']} {f['total_amount']}", True),
        ]
    return lines, f


_MAKERS = {"invoice": _invoice, "receipt": _receipt, "purchase_order": _purchase_order}
LAYOUTS = 2


_TITLES = {"invoice": "INVOICE", "receipt": "RECEIPT", "purchase_order": "PURCHASE ORDER"}


def make_document(cls: str, rng: random.Random, held_out: bool, mini: bool = False) -> tuple[str, dict[str, Any]]:
    """One document of class `cls` and its gold fields; `mini` is a warm-up form: the fields as `key: value` lines."""
    lines, fields = _MAKERS[cls](_Values(rng, held_out), rng.randrange(LAYOUTS))
    if mini:
        # Labels equal to the JSON keys teach the copy circuit fast; the real layouts then reuse it.
        text = "\n".join([_TITLES[cls], *(f"{k}: {v}" for k, v in fields.items())])
    else:
        text = "\n".join(t for t, _ in lines)
    return text, {"document_type": cls, **fields}


def _write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    os.replace(tmp, path)


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def generate_idp_dataset(
    out_dir: Path, n_train: int, n_eval_per_class: int, seed: int, mini_fraction: float = 0.25
) -> IdpDataset:
    """Write train.jsonl, eval.jsonl (held-out values), the schemas and a sample document under `out_dir`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    train = []
    for i in range(n_train):
        cls = CLASSES[i % len(CLASSES)]
        doc, fields = make_document(cls, rng, held_out=False, mini=rng.random() < mini_fraction)
        train.append({"document": doc, "fields": fields, "class": cls})
    rng.shuffle(train)
    held = random.Random(seed + 1_000_003)
    evals = []
    for cls in CLASSES:
        for i in range(n_eval_per_class):
            doc, fields = make_document(cls, held, held_out=True)
            evals.append({"id": f"{cls}-{i:04d}", "document": doc, "fields": fields, "class": cls})
    _write_jsonl(out_dir / "train.jsonl", train)
    _write_jsonl(out_dir / "eval.jsonl", evals)
    class_paths = {cls: out_dir / f"schema_{cls}.json" for cls in CLASSES}
    for cls, path in class_paths.items():
        _write_json(path, class_schema(cls))
    _write_json(out_dir / "schema.json", combined_schema())
    sample = out_dir / "sample_document.txt"
    tmp = sample.with_name(sample.name + ".tmp")
    tmp.write_text(make_document("invoice", random.Random(seed + 7), held_out=True)[0] + "\n", encoding="utf-8")
    os.replace(tmp, sample)
    return IdpDataset(
        out_dir, out_dir / "train.jsonl", out_dir / "eval.jsonl", out_dir / "schema.json", class_paths, sample
    )


def tokenizer_corpus(dataset: IdpDataset, limit: int = 3000) -> list[str]:
    """Texts to train the tiny tokenizer on: training prompts and answers (never held-out data)."""
    from llmops.tasks.idp import IDPTask

    task = IDPTask(json.loads(dataset.schema.read_text(encoding="utf-8")))
    texts = []
    with dataset.train.open(encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            if i >= limit:
                break
            rec = json.loads(line)
            texts.append(task.build_prompt(rec["document"]))
            texts.append(task.format_answer(rec["fields"]))
    return texts
