"""Printed wording per language for synthetic business documents: labels, boilerplate, number and date formats."""

from __future__ import annotations

import zlib
from datetime import date
from decimal import Decimal

LANGUAGES = ("en", "de", "fr")
_SYMBOL = {"EUR": "€", "GBP": "£", "USD": "$", "CHF": "CHF"}
_MONTHS = {
    "en": (
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ),
    "de": (
        "Januar",
        "Februar",
        "März",
        "April",
        "Mai",
        "Juni",
        "Juli",
        "August",
        "September",
        "Oktober",
        "November",
        "Dezember",
    ),
    "fr": (
        "janvier",
        "février",
        "mars",
        "avril",
        "mai",
        "juin",
        "juillet",
        "août",
        "septembre",
        "octobre",
        "novembre",
        "décembre",
    ),
}
DATE_STYLES = {"en": ("long", "us", "iso"), "de": ("long", "numeric"), "fr": ("long", "numeric")}

# Each label: a "|"-separated list of wordings; a layout's variant number picks one.
_EN = {
    "salutation": "Dear Sir or Madam,|Dear customer,",
    "intro.invoice": "Thank you for your order. We hereby invoice the following goods and services:|As agreed, we "
    "charge you for the following deliveries and services:",
    "intro.purchase_order": "We hereby order the following items under our general terms of purchase:|Please supply "
    "the following goods and services at the prices stated below:",
    "regards": "Kind regards|Yours faithfully|Best regards",
    "contact": "Contact|Your contact",
    "note.invoice": "Goods remain our property until paid in full.|Unless stated otherwise, the date of supply is the "
    "invoice date.|Please check the delivery for completeness upon receipt.",
    "note.purchase_order": "Deliveries are accepted Monday to Friday, 8:00 to 16:00.|Partial deliveries only after "
    "prior agreement.",
    "delivery_address": "Delivery address|Deliver to",
    "title.invoice": "INVOICE|Invoice|Tax Invoice",
    "title.receipt": "RECEIPT|Sales Receipt|Receipt",
    "title.purchase_order": "PURCHASE ORDER|Purchase Order",
    "number.invoice": "Invoice No.|Invoice number|Invoice #",
    "number.receipt": "Receipt No.|Receipt #|Transaction",
    "number.purchase_order": "PO Number|Order No.|PO #",
    "date.invoice": "Date|Invoice date|Issue date",
    "date.receipt": "Date",
    "date.purchase_order": "Order date|Date",
    "due": "Due date|Payment due|Due",
    "delivery.invoice": "Delivery date|Service date|Date of supply",
    "delivery.purchase_order": "Delivery date|Deliver by",
    "customer.invoice": "Customer No.|Account No.",
    "customer.purchase_order": "Supplier No.|Vendor ID",
    "order_ref": "Your order|Order ref.",
    "to.invoice": "Bill to|Invoice to|Customer",
    "to.purchase_order": "Supplier|Vendor",
    "from.invoice": "From|Seller",
    "from.purchase_order": "Ordered by|Buyer|Ship to",
    "pos": "#|No.",
    "desc": "Description|Item|Product / Service",
    "qty": "Qty|Quantity|Units",
    "unit": "Unit",
    "price": "Unit price|Price|Rate",
    "amount": "Amount|Line total|Total",
    "unit.h": "h|hrs",
    "unit.pc": "pcs|ea.",
    "unit.flat": "flat|job",
    "items_total": "Items total|Goods total",
    "discount": "Discount {p}%",
    "shipping": "Shipping|Delivery charge",
    "subtotal": "Subtotal|Net total|Total excl. VAT",
    "vat": "VAT {r}%|VAT @ {r}%",
    "sales_tax": "Sales tax {r}%|Tax {r}%",
    "total.invoice": "Total|Total due|Amount due|Grand total",
    "total.receipt": "TOTAL|Total",
    "total.purchase_order": "Order total|Total",
    "sentence.invoice": "Please pay {amount} by {date}, quoting invoice number {number}.",
    "sentence.purchase_order": "The total value of this order is {amount}.",
    "sentence.receipt": "You paid {amount}. Thank you!",
    "immediately": "Payable upon receipt.",
    "terms": "Payment terms: {d} days net|Payable within {d} days of the invoice date.",
    "bank": "Bank details|Payment details",
    "holder": "Account holder|Payee",
    "reference": "Payment reference|Reference",
    "article": "Item no.|Art. no.",
    "tax_id": "VAT No.|VAT Reg. No.|VAT ID",
    "tax_id.US": "EIN|Tax ID",
    "phone": "Tel.|Phone",
    "email": "Email|E-mail",
    "web": "Web",
    "director": "Director",
    "page": "Page {p} of {n}|Page {p}/{n}",
    "thanks.invoice": "Thank you for your business.|We appreciate your trust.",
    "thanks.receipt": "Thank you for shopping with us!|Please come again.",
    "thanks.purchase_order": "Please confirm this order within 3 working days.",
    "quote.invoice": "Please quote the invoice number with your payment.",
    "quote.purchase_order": "Please state the order number on all delivery notes and invoices.",
    "quote.receipt": "Keep this receipt for returns within 30 days.",
    "time": "Time",
    "cashier": "Till|Register",
    "card": "Paid by card|Card payment",
    "cash": "Cash",
    "change": "Change",
    "vat_included": "All prices include VAT.",
    "currency_note": "All amounts in {c}.",
    "terms_title": "General terms and conditions",
    "terms_text": "All deliveries and services are provided exclusively on the basis of these terms. Goods remain "
    "our property until paid in full. Complaints about obvious defects must be made in writing within "
    "eight days of receipt of the goods. Late payments bear interest at eight percentage points above "
    "the base rate. Any set-off is only permitted with undisputed claims. The place of performance and "
    "jurisdiction is the registered office of the seller. Should any provision of these terms be or "
    "become invalid, the validity of the remaining provisions shall not be affected.",
}
_DE = {
    "salutation": "Sehr geehrte Damen und Herren,",
    "intro.invoice": "vielen Dank für Ihren Auftrag. Wir berechnen Ihnen folgende Lieferungen und Leistungen:|wie "
    "vereinbart stellen wir Ihnen folgende Leistungen in Rechnung:",
    "intro.purchase_order": "hiermit bestellen wir zu unseren Einkaufsbedingungen folgende Artikel:|bitte liefern Sie "
    "uns die nachstehend aufgeführten Waren und Leistungen:",
    "regards": "Mit freundlichen Grüßen|Freundliche Grüße",
    "contact": "Ansprechpartner|Ihr Kontakt",
    "note.invoice": "Die Ware bleibt bis zur vollständigen Bezahlung unser Eigentum.|Sofern nicht anders angegeben, "
    "entspricht das Leistungsdatum dem Rechnungsdatum.|Bitte prüfen Sie die Lieferung bei Erhalt.",
    "note.purchase_order": "Warenannahme Montag bis Freitag von 8:00 bis 16:00 Uhr.|Teillieferungen nur nach "
    "vorheriger Absprache.",
    "delivery_address": "Lieferanschrift|Lieferadresse",
    "title.invoice": "RECHNUNG|Rechnung",
    "title.receipt": "KASSENBON|Quittung|Beleg",
    "title.purchase_order": "BESTELLUNG|Bestellung",
    "number.invoice": "Rechnungsnummer|Rechnungs-Nr.|Rechnung Nr.",
    "number.receipt": "Bon-Nr.|Beleg-Nr.|Belegnummer",
    "number.purchase_order": "Bestellnummer|Bestell-Nr.",
    "date.invoice": "Datum|Rechnungsdatum",
    "date.receipt": "Datum",
    "date.purchase_order": "Bestelldatum|Datum",
    "due": "Fällig am|Zahlbar bis|Fälligkeitsdatum",
    "delivery.invoice": "Lieferdatum|Leistungsdatum",
    "delivery.purchase_order": "Liefertermin|Lieferdatum",
    "customer.invoice": "Kundennummer|Kunden-Nr.",
    "customer.purchase_order": "Lieferantennummer|Lieferanten-Nr.",
    "order_ref": "Ihre Bestellung|Auftrag",
    "to.invoice": "Rechnungsempfänger|Kunde|An",
    "to.purchase_order": "Lieferant|Auftragnehmer",
    "from.invoice": "Von|Rechnungssteller",
    "from.purchase_order": "Besteller|Auftraggeber|Lieferadresse",
    "pos": "Pos.|Nr.",
    "desc": "Beschreibung|Bezeichnung|Artikel",
    "qty": "Menge|Anz.",
    "unit": "Einheit|ME",
    "price": "Einzelpreis|E-Preis|Preis",
    "amount": "Betrag|Gesamtpreis|Gesamt",
    "unit.h": "Std.",
    "unit.pc": "Stk.",
    "unit.flat": "pausch.",
    "items_total": "Warenwert|Summe Positionen",
    "discount": "Rabatt {p} %|Nachlass {p} %",
    "shipping": "Versandkosten|Fracht",
    "subtotal": "Zwischensumme|Nettobetrag|Summe netto",
    "vat": "MwSt. {r} %|USt. {r} %|zzgl. {r} % MwSt.",
    "total.invoice": "Gesamtbetrag|Rechnungsbetrag|Gesamtsumme",
    "total.receipt": "SUMME|Gesamt",
    "total.purchase_order": "Gesamtbetrag|Bestellsumme",
    "sentence.invoice": "Bitte überweisen Sie {amount} bis zum {date} unter Angabe der Rechnungsnummer {number}.",
    "sentence.purchase_order": "Der Gesamtwert dieser Bestellung beträgt {amount}.",
    "sentence.receipt": "Sie haben {amount} bezahlt. Vielen Dank!",
    "immediately": "Zahlbar sofort ohne Abzug.",
    "terms": "Zahlungsbedingungen: {d} Tage netto|Zahlbar innerhalb von {d} Tagen ohne Abzug.",
    "bank": "Bankverbindung",
    "holder": "Kontoinhaber|Empfänger",
    "reference": "Verwendungszweck",
    "article": "Art.-Nr.|Artikelnummer",
    "tax_id": "USt-IdNr.|USt-ID|UID-Nr.",
    "phone": "Tel.|Telefon",
    "email": "E-Mail",
    "web": "Web|Internet",
    "director": "Geschäftsführer|Geschäftsführung",
    "page": "Seite {p} von {n}|Seite {p}/{n}",
    "thanks.invoice": "Vielen Dank für Ihren Auftrag.|Wir danken für Ihr Vertrauen.",
    "thanks.receipt": "Vielen Dank für Ihren Einkauf!|Auf Wiedersehen!",
    "thanks.purchase_order": "Bitte bestätigen Sie diese Bestellung innerhalb von 3 Werktagen.",
    "quote.invoice": "Bitte geben Sie bei Zahlung die Rechnungsnummer an.",
    "quote.purchase_order": "Bitte geben Sie die Bestellnummer auf allen Lieferscheinen und Rechnungen an.",
    "quote.receipt": "Umtausch nur mit Kassenbon innerhalb von 30 Tagen.",
    "time": "Uhrzeit",
    "cashier": "Kasse",
    "card": "Kartenzahlung|EC-Karte",
    "cash": "Bar",
    "change": "Rückgeld",
    "vat_included": "Alle Preise inkl. MwSt.",
    "currency_note": "Alle Beträge in {c}.|Beträge in {c}",
    "terms_title": "Allgemeine Geschäftsbedingungen",
    "terms_text": "Alle Lieferungen und Leistungen erfolgen ausschließlich auf Grundlage dieser Bedingungen. Die Ware "
    "bleibt bis zur vollständigen Bezahlung unser Eigentum. Offensichtliche Mängel sind innerhalb von "
    "acht Tagen nach Erhalt der Ware schriftlich anzuzeigen. Bei Zahlungsverzug berechnen wir Zinsen "
    "in Höhe von neun Prozentpunkten über dem Basiszinssatz. Eine Aufrechnung ist nur mit unbestrittenen "
    "Forderungen zulässig. Erfüllungsort und Gerichtsstand ist der Sitz des Verkäufers. Sollte eine "
    "Bestimmung unwirksam sein, bleibt die Wirksamkeit der übrigen Bestimmungen unberührt.",
}
_FR = {
    "salutation": "Madame, Monsieur,",
    "intro.invoice": "nous vous remercions de votre commande et vous prions de trouver ci-dessous le détail de nos "
    "prestations :|veuillez trouver ci-dessous la facturation des livraisons et prestations "
    "convenues :",
    "intro.purchase_order": "nous vous prions de bien vouloir nous livrer les articles suivants aux conditions "
    "ci-dessous :|veuillez trouver ci-dessous notre commande :",
    "regards": "Cordialement|Salutations distinguées",
    "contact": "Votre contact|Contact",
    "note.invoice": "Les marchandises restent notre propriété jusqu'au paiement intégral.|Sauf mention contraire, la "
    "date de prestation correspond à la date de facture.|Merci de vérifier la livraison à réception.",
    "note.purchase_order": "Réception des marchandises du lundi au vendredi de 8 h à 16 h.|Livraisons partielles "
    "uniquement après accord préalable.",
    "delivery_address": "Adresse de livraison|Livrer à",
    "title.invoice": "FACTURE|Facture",
    "title.receipt": "TICKET DE CAISSE|Reçu|Ticket",
    "title.purchase_order": "BON DE COMMANDE|Bon de commande",
    "number.invoice": "Facture n°|N° de facture|Numéro de facture",
    "number.receipt": "Ticket n°|N° de ticket|Reçu n°",
    "number.purchase_order": "N° de commande|Commande n°",
    "date.invoice": "Date|Date de facture|Date d'émission",
    "date.receipt": "Date",
    "date.purchase_order": "Date de commande|Date",
    "due": "Échéance|Date d'échéance|À payer avant le",
    "delivery.invoice": "Date de livraison|Date de prestation",
    "delivery.purchase_order": "Livraison souhaitée|Date de livraison",
    "customer.invoice": "N° client|Code client",
    "customer.purchase_order": "N° fournisseur|Code fournisseur",
    "order_ref": "Votre commande|Réf. commande",
    "to.invoice": "Facturé à|Client|Destinataire",
    "to.purchase_order": "Fournisseur",
    "from.invoice": "De|Émetteur",
    "from.purchase_order": "Acheteur|Livrer à",
    "pos": "#|N°",
    "desc": "Désignation|Description|Article",
    "qty": "Qté|Quantité",
    "unit": "Unité",
    "price": "Prix unitaire|P.U. HT|Prix",
    "amount": "Montant|Montant HT|Total HT",
    "unit.h": "h",
    "unit.pc": "pce",
    "unit.flat": "forfait",
    "items_total": "Total articles|Total marchandises",
    "discount": "Remise {p} %",
    "shipping": "Frais de port|Livraison",
    "subtotal": "Sous-total|Total HT|Montant HT",
    "vat": "TVA {r} %|TVA ({r} %)",
    "total.invoice": "Total TTC|Net à payer|Montant TTC",
    "total.receipt": "TOTAL|Total TTC",
    "total.purchase_order": "Total TTC|Montant total",
    "sentence.invoice": "Merci de régler la somme de {amount} avant le {date} en rappelant la facture {number}.",
    "sentence.purchase_order": "Le montant total de cette commande s'élève à {amount}.",
    "sentence.receipt": "Vous avez payé {amount}. Merci !",
    "immediately": "Payable à réception.",
    "terms": "Conditions de paiement : {d} jours net|Paiement à {d} jours date de facture.",
    "bank": "Coordonnées bancaires|Règlement par virement",
    "holder": "Titulaire du compte|Bénéficiaire",
    "reference": "Référence de paiement|Libellé du virement",
    "article": "Réf.|Référence article",
    "tax_id": "N° TVA|TVA intracom.|N° TVA intracommunautaire",
    "phone": "Tél.|Téléphone",
    "email": "E-mail|Courriel",
    "web": "Site",
    "director": "Gérant|Président",
    "page": "Page {p}/{n}|Page {p} sur {n}",
    "thanks.invoice": "Merci de votre confiance.|Merci pour votre commande.",
    "thanks.receipt": "Merci de votre visite !|À bientôt !",
    "thanks.purchase_order": "Merci de confirmer cette commande sous 3 jours ouvrés.",
    "quote.invoice": "Merci d'indiquer le numéro de facture lors de votre paiement.",
    "quote.purchase_order": "Merci de rappeler le numéro de commande sur vos bons de livraison et factures.",
    "quote.receipt": "Échange possible sous 30 jours sur présentation du ticket.",
    "time": "Heure",
    "cashier": "Caisse",
    "card": "Payé par carte|Carte bancaire",
    "cash": "Espèces",
    "change": "Rendu",
    "vat_included": "Prix TTC.",
    "currency_note": "Montants exprimés en {c}.|Montants en {c}",
    "terms_title": "Conditions générales de vente",
    "terms_text": "Toutes les livraisons et prestations sont effectuées exclusivement selon les présentes conditions. "
    "Les marchandises restent notre propriété jusqu'au paiement intégral. Les réclamations pour vices "
    "apparents doivent être formulées par écrit dans les huit jours suivant la réception. Tout retard "
    "de paiement entraîne des pénalités égales à trois fois le taux d'intérêt légal ainsi qu'une "
    "indemnité forfaitaire de 40 euros pour frais de recouvrement. Aucun escompte n'est accordé pour "
    "paiement anticipé. Le tribunal de commerce du siège du vendeur est seul compétent.",
}
_LABELS = {"en": _EN, "de": _DE, "fr": _FR}


class Labels:
    """Label wording for one language; `variant` (a layout's number) picks one wording per label."""

    def __init__(self, language: str, variant: int) -> None:
        self.language, self.variant = language, variant

    def __call__(self, key: str, **values: object) -> str:
        """The label `key` in this language, with `values` filled in."""
        options = _LABELS[self.language][key].split("|")
        text = options[(self.variant + zlib.crc32(key.encode())) % len(options)]
        return text.format(**values) if values else text


def format_amount(cents: int, language: str) -> str:
    """An amount in the language's number format: en 1,234.56, de 1.234,56, fr 1 234,56."""
    whole = f"{abs(cents) // 100:,}"
    frac = f"{abs(cents) % 100:02d}"
    sign = "-" if cents < 0 else ""
    if language == "en":
        return f"{sign}{whole}.{frac}"
    return sign + whole.replace(",", "." if language == "de" else " ") + "," + frac


def format_money(cents: int, currency: str, language: str, style: str) -> str:
    """An amount with its currency: style "symbol" (€1.00 / 1,00 €), "code" (EUR 1.00 / 1,00 EUR) or "plain"."""
    amount = format_amount(cents, language)
    if style == "plain":
        return amount
    mark = _SYMBOL[currency] if style == "symbol" else currency
    if language == "en" and (style == "code" or mark == "CHF"):
        return f"{mark} {amount}"
    if language == "en":
        return f"-{mark}{amount[1:]}" if cents < 0 else f"{mark}{amount}"
    return f"{amount} {mark}"


def format_date(day: date, language: str, style: str) -> str:
    """A date as printed: en "7 May 2014" / "May 7, 2014" / ISO, de "7. Mai 2014" / "07.05.2014", fr "7 mai 2014"."""
    month = _MONTHS[language][day.month - 1]
    if style == "iso":
        return day.isoformat()
    if style == "us":
        return f"{month} {day.day}, {day.year}"
    if style == "numeric":
        return day.strftime("%d.%m.%Y" if language == "de" else "%d/%m/%Y")
    return f"{day.day}. {month} {day.year}" if language == "de" else f"{day.day} {month} {day.year}"


def format_decimal(value: Decimal, language: str) -> str:
    """A quantity or a tax rate: 3, 2.5 (en) or 2,5 (de, fr)."""
    text = f"{value.normalize():f}"
    return text if language == "en" else text.replace(".", ",")
