"""Values for full-page synthetic business documents: parties, addresses, ids, line items, amounts, dates.

Every company-name stem, number (document number, tax id, customer number), issue date and unit price goes to the
training or the held-out side by a hash of its text (see `values.SplitValues`); amounts derived from them follow.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from llmops.quickstart.doc_vocabulary import (
    _CITIES,
    _CODAS,
    _EXTRA_LINE,
    _ITEMS,
    _LANG_INDEX,
    _LEGAL,
    _NUMBERS,
    _ONSETS,
    _PEOPLE,
    _RECEIPT_ITEMS,
    _SHOPS,
    _STREETS,
    _VOWELS,
    _WORDS,
)
from llmops.quickstart.values import SplitValues

REGIONS = {"en": ("GB", "US", "IE"), "de": ("DE", "AT", "CH"), "fr": ("FR", "BE", "CH")}
CURRENCY = {"GB": "GBP", "US": "USD", "IE": "EUR", "DE": "EUR", "AT": "EUR", "CH": "CHF", "FR": "EUR", "BE": "EUR"}
VAT_RATES = {
    "GB": ("20",),
    "US": ("7", "8.25", "6.5", None),
    "IE": ("23", "13.5"),
    "DE": ("19", "19", "7"),
    "AT": ("20", "10"),
    "CH": ("8.1", "2.6"),
    "FR": ("20", "20", "10", "5.5"),
    "BE": ("21", "6"),
}


@dataclass(frozen=True)
class Party:
    """A company as printed: name, address lines, tax id (None when not printed) and contact details."""

    name: str
    address: tuple[str, ...]
    tax_id: str | None
    phone: str
    email: str
    website: str


@dataclass(frozen=True)
class LineItem:
    """One line of the item table; money in cents."""

    description: str
    quantity: Decimal
    unit: str  # "h", "pc" or "flat"
    unit_price: int
    amount: int


@dataclass(frozen=True)
class Document:
    """Everything one document shows: the gold fields plus distractors (discount, shipping, bank, register...)."""

    kind: str
    language: str
    region: str
    number: str
    issue_date: date
    due_date: date | None
    delivery_date: date | None
    currency: str
    seller: Party
    buyer: Party | None
    items: tuple[LineItem, ...]
    discount_pct: int  # 0: no discount shown
    discount: int
    shipping: int  # 0: no shipping shown
    tax_rate: Decimal | None  # None: no tax shown (subtotal and tax are then None)
    subtotal: int | None
    tax: int | None
    total: int
    payment_days: int | None
    customer_number: str | None
    order_reference: str | None
    iban: str | None
    bic: str | None
    bank: str | None
    register: str | None
    director: str | None
    contact: str  # the person to ask, printed with the details and under the closing
    time: str  # receipts: time of sale
    paid_by: str  # receipts: "card" or "cash"
    cash_given: int
    long: bool  # shows general terms on a second page

    @property
    def items_total(self) -> int:
        """Sum of the line amounts, before discount and shipping."""
        return sum(item.amount for item in self.items)


def round_cents(value: Decimal) -> int:
    """Round an amount in cents half up to a whole cent."""
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _json_money(cents: int | None) -> str | None:
    if cents is None:
        return None
    sign = "-" if cents < 0 else ""
    return f"{sign}{abs(cents) // 100}.{abs(cents) % 100:02d}"


def gold_fields(doc: Document) -> dict[str, Any]:
    """The gold JSON of a document, keys in schema order."""

    def party(p: Party | None) -> dict[str, Any] | None:
        return None if p is None else {"name": p.name, "address": ", ".join(p.address), "tax_id": p.tax_id}

    def iso(d: date | None) -> str | None:
        return None if d is None else d.isoformat()

    items = [
        {
            "description": i.description,
            "quantity": int(i.quantity) if i.quantity == i.quantity.to_integral() else float(i.quantity),
            "unit_price": _json_money(i.unit_price),
            "amount": _json_money(i.amount),
        }
        for i in doc.items
    ]
    return {
        "document_type": doc.kind,
        "document_number": doc.number,
        "issue_date": doc.issue_date.isoformat(),
        "due_date": iso(doc.due_date),
        "delivery_date": iso(doc.delivery_date),
        "currency": doc.currency,
        "seller": party(doc.seller),
        "buyer": party(doc.buyer),
        "line_items": items,
        "subtotal": _json_money(doc.subtotal),
        "tax": _json_money(doc.tax),
        "total": _json_money(doc.total),
    }


class DocValues(SplitValues):
    """Draws document values from the training side or the held-out side of each value's hash split."""

    def stem(self) -> str:
        """A made-up company-name stem such as "Tralo"."""
        return self.syllables(_ONSETS, _VOWELS, _CODAS)

    def digits(self, n: int) -> str:
        """A string of `n` digits on this side of the split."""
        return self._draw(lambda: "".join(self.rng.choice(string.digits) for _ in range(n)))

    def day(self) -> date:
        """An issue date between 2019 and 2025."""
        start = date(2019, 1, 1)
        return date.fromisoformat(self._draw(lambda: (start + timedelta(self.rng.randrange(2500))).isoformat()))

    def price(self, low: int, high: int, whole: bool) -> int:
        """A unit price in cents between `low` and `high` currency units."""
        r = self.rng
        text = self._draw(lambda: f"{r.randint(low, high)}.{0 if whole else r.randrange(100):02d}")
        return int(text.replace(".", ""))

    def company(self, place: str, language: str, shop: bool) -> str:
        """A company (or, for receipts, shop) name in the style of `place`."""
        r, stem = self.rng, self.stem()
        if shop:
            word = r.choice(_SHOPS[language])
            return f"{stem} {word}" if language == "en" else f"{word} {stem}"
        words = [stem] + ([r.choice(_WORDS[language])] if r.random() < 0.6 else [])
        if r.random() < 0.1:
            words = [stem, "&", self.stem()]
        return " ".join([*words, r.choice(_LEGAL[place])])

    def address(self, region: str, place: str, language: str) -> tuple[str, ...]:
        """Address lines: street (and sometimes a building line), then postcode and city."""
        r = self.rng
        first, second = _STREETS[language]
        number = str(r.randint(100, 9800) if region == "US" else r.randint(1, 140))
        if language == "de":
            street = f"{r.choice(first)}{r.choice(second)} {number}"
        elif language == "fr":
            kind, name = r.choice(first), r.choice(second)
            street = f"{number} {kind} {name}" if region == "FR" else f"{kind.capitalize()} {name} {number}"
        else:
            street = f"{number} {r.choice(first)} {r.choice(second)}"
        city, prefix = r.choice(_CITIES[place])
        letters = "".join(r.choice("ABDEFHJNPRTWXY") for _ in range(2))
        code = {
            "GB": f"{prefix} {r.randint(1, 9)}{letters}",
            "IE": f"{prefix} {letters[0]}{r.randint(100, 999)}",
            "US": f"{prefix}{r.randint(10, 99)}",
        }.get(region, prefix + self.digits(5 - len(prefix) - (region in ("AT", "CH", "BE"))))
        lines = [street]
        if r.random() < 0.2:
            lines.append(r.choice(_EXTRA_LINE[language]).format(n=r.randint(2, 40), l=r.choice("ABCDE")))
        lines.append(f"{city} {code}" if region in ("GB", "US", "IE") else f"{code} {city}")
        return tuple(lines)

    def tax_id(self, region: str, language: str) -> str:
        """A VAT id (or EIN for the US) in the country's format."""
        d = self.digits
        if region == "CH":
            n = d(9)
            return f"CHE-{n[:3]}.{n[3:6]}.{n[6:]} {'MWST' if language == 'de' else 'TVA'}"
        return {
            "DE": lambda: "DE" + d(9),
            "AT": lambda: "ATU" + d(8),
            "FR": lambda: "FR" + d(11),
            "BE": lambda: "BE0" + d(9),
            "GB": lambda: "GB" + d(9),
            "IE": lambda: "IE" + d(7) + "W",
            "US": lambda: f"{d(2)}-{d(7)}",
        }[region]()

    def phone(self, region: str) -> str:
        """A phone number in the country's style."""
        r = self.rng
        n = "".join(r.choice(string.digits) for _ in range(8))
        return {
            "DE": f"+49 30 {n[:6]}-{n[6:]}",
            "AT": f"+43 1 {n[:3]} {n[3:5]} {n[5:7]}",
            "CH": f"+41 44 {n[:3]} {n[3:5]} {n[5:7]}",
            "FR": f"+33 1 {n[:2]} {n[2:4]} {n[4:6]} {n[6:]}",
            "BE": f"+32 2 {n[:3]} {n[3:5]} {n[5:7]}",
            "GB": f"+44 20 {n[:4]} {n[4:]}",
            "US": f"({n[:3]}) {n[3:6]}-{n[6:]}{n[:2]}",
            "IE": f"+353 1 {n[:3]} {n[3:7]}",
        }[region]

    def party(self, region: str, language: str, shop: bool, tax_chance: float) -> Party:
        """A company with address, contact details and (with probability `tax_chance`) a printed tax id."""
        r = self.rng
        place = f"CH-{language}" if region == "CH" else region
        name = self.company(place, language, shop)
        domain = name.split()[0 if language == "en" or not shop else -1].lower() + {
            "GB": ".co.uk",
            "US": ".com",
            "IE": ".ie",
        }.get(region, "." + region.lower())
        local = r.choice(
            {
                "en": ("info", "accounts", "billing"),
                "de": ("info", "rechnung", "buchhaltung"),
                "fr": ("contact", "factures", "compta"),
            }[language]
        )
        tax = self.tax_id(region, language) if r.random() < tax_chance else None
        return Party(
            name, self.address(region, place, language), tax, self.phone(region), f"{local}@{domain}", f"www.{domain}"
        )

    def items(self, kind: str, language: str, count: int) -> tuple[LineItem, ...]:
        """`count` different line items with consistent amounts (amount = quantity x unit price, rounded half up)."""
        r, lang = self.rng, _LANG_INDEX[language]
        out = []
        for entry in r.sample(_RECEIPT_ITEMS if kind == "receipt" else _ITEMS, count):
            if kind == "receipt":
                low, high, *names = entry
                unit, qty, price = "pc", Decimal(r.choice((1, 1, 1, 2, 2, 3, 4))), self.price(low, high, False)
            else:
                unit, low, high, *names = entry
                qty = {
                    "h": Decimal(r.randint(1, 32)) + (Decimal("0.5") if r.random() < 0.2 else 0),
                    "flat": Decimal(r.choice((1, 1, 1, 2, 3))),
                    "pc": Decimal(r.randint(1, 60 if high < 20 else 12)),
                }[unit]
                price = self.price(low, high, unit != "pc")
            out.append(LineItem(names[lang], qty, unit, price, round_cents(qty * price)))
        return tuple(out)

    def person(self, language: str) -> str:
        """A managing director's name."""
        first, last = _PEOPLE[language]
        return f"{self.rng.choice(first)} {self.rng.choice(last)}"

    def number(self, kind: str, language: str, year: int) -> str:
        """A document number in one of the class's and language's patterns, e.g. "RE-2021-0815"."""
        pattern = self.rng.choice(_NUMBERS[kind][language])
        return self._draw(
            lambda: pattern.format(
                y=year, **{f"n{k}": "".join(self.rng.choice(string.digits) for _ in range(k)) for k in (3, 4, 5, 6)}
            )
        )

    def bank(self, region: str, language: str) -> tuple[str, str, str] | None:
        """Bank name, IBAN (grouped by four, valid check digits) and BIC; None for US companies."""
        if region == "US":
            return None
        r = self.rng
        place = f"CH-{language}" if region == "CH" else region
        city = r.choice(_CITIES[place])[0]
        length = {"DE": 18, "AT": 16, "CH": 17, "FR": 23, "BE": 12, "GB": 14, "IE": 14}[region]
        bban = "".join(r.choice(string.digits) for _ in range(length))
        if region in ("GB", "IE"):
            bban = "".join(r.choice(string.ascii_uppercase) for _ in range(4)) + bban
        check = 98 - int("".join(str(int(ch, 36)) for ch in bban + region + "00")) % 97
        iban = f"{region}{check:02d}{bban}"
        bic = "".join(r.choice(string.ascii_uppercase) for _ in range(4)) + region + r.choice(("FF", "MM", "2X", "22"))
        name = r.choice(
            {
                "en": ("{c} Savings Bank", "Bank of {c}"),
                "de": ("Sparkasse {c}", "Volksbank {c}"),
                "fr": ("Caisse Régionale de {c}", "Banque de {c}"),
            }[language]
        ).format(c=city)
        return (
            name,
            " ".join(iban[i : i + 4] for i in range(0, len(iban), 4)),
            bic + ("XXX" if r.random() < 0.5 else ""),
        )

    def register(self, region: str, language: str) -> str | None:
        """The commercial-register entry printed in a legal footer; None for US companies."""
        place = f"CH-{language}" if region == "CH" else region
        city = self.rng.choice(_CITIES[place])[0]
        d = self.digits
        return {
            "DE": lambda: f"Amtsgericht {city}, HRB {d(5)}",
            "AT": lambda: f"FN {d(6)} x, Handelsgericht {city}",
            "CH": lambda: f"Handelsregister {city}" if language == "de" else f"Registre du commerce de {city}",
            "FR": lambda: f"RCS {city} {d(3)} {d(3)} {d(3)}",
            "BE": lambda: f"RPM {city} 0{d(3)}.{d(3)}.{d(3)}",
            "GB": lambda: f"Registered in England and Wales No. {d(8)}",
            "IE": lambda: f"Registered in Ireland No. {d(6)}",
            "US": lambda: None,
        }[region]()
