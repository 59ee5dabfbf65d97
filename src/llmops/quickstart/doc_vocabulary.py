"""The word lists and formats the document generator draws from: syllables for names, legal forms, shops, cities,
streets, people, line items and number formats, per language or region (see `doc_values.DocValues`)."""

from __future__ import annotations

_ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "tr", "st", "gr", "pl")
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ou")
_CODAS = ("", "", "", "n", "r", "s", "x", "l")
_WORDS = {
    "de": ("Handel", "Technik", "Systeme", "Logistik", "Bau", "Consulting", "Druck", "Elektro", "Software"),
    "fr": ("Distribution", "Services", "Conseil", "Industrie", "Bâtiment", "Informatique", "Logistique"),
    "en": ("Trading", "Systems", "Logistics", "Supplies", "Partners", "Engineering", "Consulting", "Print"),
}
_LEGAL = {
    "DE": ("GmbH", "AG", "KG", "GmbH & Co. KG", "e.K."),
    "AT": ("GmbH", "AG", "OG", "KG"),
    "CH-de": ("AG", "GmbH"),
    "CH-fr": ("SA", "Sàrl"),
    "FR": ("SARL", "SAS", "SA", "EURL"),
    "BE": ("SRL", "SA", "SC"),
    "GB": ("Ltd", "Limited", "PLC", "LLP"),
    "US": ("Inc.", "LLC", "Corp."),
    "IE": ("Ltd", "Limited", "DAC"),
}
_SHOPS = {
    "en": ("Market", "Cafe", "Pharmacy", "Bakery", "Hardware", "Books", "Deli"),
    "de": ("Bäckerei", "Apotheke", "Markt", "Café", "Buchhandlung", "Eisenwaren"),
    "fr": ("Boulangerie", "Pharmacie", "Épicerie", "Café", "Librairie", "Quincaillerie"),
}
_CITIES = {
    "DE": (
        ("Berlin", "10"),
        ("Hamburg", "20"),
        ("München", "80"),
        ("Köln", "50"),
        ("Leipzig", "04"),
        ("Düsseldorf", "40"),
        ("Stuttgart", "70"),
        ("Nürnberg", "90"),
    ),
    "AT": (("Wien", "1"), ("Graz", "8"), ("Linz", "4"), ("Salzburg", "5"), ("Innsbruck", "6")),
    "CH-de": (("Zürich", "80"), ("Bern", "30"), ("Basel", "40"), ("Luzern", "60"), ("St. Gallen", "90")),
    "CH-fr": (("Genève", "12"), ("Lausanne", "10"), ("Neuchâtel", "20"), ("Fribourg", "17"), ("Sion", "19")),
    "FR": (
        ("Paris", "75"),
        ("Lyon", "69"),
        ("Marseille", "13"),
        ("Toulouse", "31"),
        ("Bordeaux", "33"),
        ("Lille", "59"),
        ("Nantes", "44"),
        ("Strasbourg", "67"),
    ),
    "BE": (("Bruxelles", "10"), ("Liège", "40"), ("Namur", "50"), ("Charleroi", "60"), ("Mons", "70")),
    "GB": (
        ("London", "EC1A"),
        ("Manchester", "M1"),
        ("Leeds", "LS1"),
        ("Bristol", "BS1"),
        ("Birmingham", "B1"),
        ("Edinburgh", "EH1"),
    ),
    "US": (
        ("Springfield, IL", "627"),
        ("Austin, TX", "787"),
        ("Denver, CO", "802"),
        ("Portland, OR", "972"),
        ("Columbus, OH", "432"),
        ("Boston, MA", "021"),
    ),
    "IE": (("Dublin", "D02"), ("Cork", "T12"), ("Galway", "H91"), ("Limerick", "V94")),
}
_STREETS = {
    "de": (
        ("Haupt", "Bahnhof", "Schiller", "Goethe", "Linden", "Garten", "Kirch", "Mühlen", "Wald", "Rosen", "Industrie"),
        ("straße", "weg", "gasse", "allee", "ring", "platz"),
    ),
    "fr": (
        ("rue", "avenue", "boulevard", "place", "allée", "chemin", "quai"),
        (
            "de la Paix",
            "Victor Hugo",
            "des Lilas",
            "du Général Leclerc",
            "Jean Jaurès",
            "de la République",
            "des Écoles",
            "Pasteur",
            "du Château",
            "Émile Zola",
            "du Moulin",
            "Saint-Honoré",
        ),
    ),
    "en": (
        (
            "High",
            "Church",
            "Station",
            "Mill",
            "King",
            "Queen",
            "Victoria",
            "Park",
            "Albert",
            "Bridge",
            "Oak",
            "Maple",
            "Market",
            "Cedar",
            "Lake",
        ),
        ("Street", "Road", "Lane", "Avenue", "Way", "Drive"),
    ),
}
_EXTRA_LINE = {
    "en": ("Suite {n}", "Unit {n}", "Floor {n}"),
    "de": ("Gebäude {l}", "Haus {l}"),
    "fr": ("Bâtiment {l}", "BP {n}"),
}
_PEOPLE = {
    "en": (("Emma", "James", "Olivia", "Daniel", "Sophie"), ("Clarke", "Hughes", "Turner", "Walsh", "Foster")),
    "de": (("Anna", "Jonas", "Lena", "Felix", "Sabine"), ("Krüger", "Becker", "Hoffmann", "Schäfer", "Weiß")),
    "fr": (("Camille", "Julien", "Élodie", "Nicolas", "Chloé"), ("Lefèvre", "Moreau", "Girard", "Dubois", "Rousseau")),
}
_LANG_INDEX = {"en": 0, "de": 1, "fr": 2}
# (unit kind, lowest and highest unit price, description in en / de / fr)
_ITEMS = (
    ("h", 65, 180, "Consulting services", "Beratungsleistung", "Prestation de conseil"),
    ("h", 45, 95, "Installation and setup", "Installation und Einrichtung", "Installation et mise en service"),
    ("h", 55, 120, "Project management", "Projektmanagement", "Gestion de projet"),
    ("h", 40, 85, "Assembly work", "Montagearbeiten", "Travaux de montage"),
    ("h", 35, 70, "Translation services", "Übersetzungsleistung", "Prestation de traduction"),
    ("flat", 150, 2400, "Software licence (annual)", "Softwarelizenz (jährlich)", "Licence logicielle (annuelle)"),
    ("flat", 40, 600, "Website maintenance, monthly", "Wartung Webseite, monatlich", "Maintenance site web, mensuelle"),
    ("flat", 25, 400, "Cloud hosting, monthly", "Cloud-Hosting, monatlich", "Hébergement cloud, mensuel"),
    ("flat", 300, 1800, "Training workshop (1 day)", "Schulung (1 Tag)", "Formation (1 jour)"),
    ("flat", 20, 350, "Travel expenses", "Reisekosten", "Frais de déplacement"),
    ("pc", 120, 690, "Office chair, ergonomic", "Bürostuhl, ergonomisch", "Chaise de bureau ergonomique"),
    ("pc", 4, 9, "Printer paper A4, 500 sheets", "Druckerpapier A4, 500 Blatt", "Papier A4, 500 feuilles"),
    ("pc", 35, 140, "LED panel 60x60 cm", "LED-Panel 60x60 cm", "Panneau LED 60x60 cm"),
    ("pc", 25, 90, "Toner cartridge, black", "Tonerkartusche schwarz", "Cartouche de toner noire"),
    ("pc", 6, 25, "HDMI cable, 2 m", "HDMI-Kabel, 2 m", "Câble HDMI, 2 m"),
    ("pc", 3, 12, "Safety gloves, size L", "Schutzhandschuhe, Größe L", "Gants de sécurité, taille L"),
    ("pc", 1, 4, "Steel bracket M8", "Stahlwinkel M8", "Équerre en acier M8"),
    ("pc", 180, 1400, "Laptop docking station", "Laptop-Dockingstation", "Station d'accueil portable"),
    ("pc", 15, 60, "Ring binders A4, pack of 10", "Ordner A4, 10er-Pack", "Classeurs A4, lot de 10"),
    ("pc", 400, 2500, "Industrial shelving unit", "Schwerlastregal", "Rayonnage industriel"),
)
_RECEIPT_ITEMS = (
    (1, 5, "Coffee", "Kaffee", "Café"),
    (1, 4, "Croissant", "Croissant", "Croissant"),
    (2, 6, "Whole grain bread", "Vollkornbrot", "Pain complet"),
    (1, 3, "Mineral water 1.5 l", "Mineralwasser 1,5 l", "Eau minérale 1,5 l"),
    (2, 9, "Notebook A5", "Notizbuch A5", "Carnet A5"),
    (2, 8, "Ballpoint pens (3)", "Kugelschreiber (3)", "Stylos bille (3)"),
    (3, 12, "Batteries AA (4)", "Batterien AA (4)", "Piles AA (4)"),
    (2, 7, "Paracetamol 500 mg", "Paracetamol 500 mg", "Paracétamol 500 mg"),
    (3, 8, "Sandwich", "Belegtes Brötchen", "Sandwich jambon"),
    (2, 5, "Orange juice 1 l", "Orangensaft 1 l", "Jus d'orange 1 l"),
    (2, 6, "Apples 1 kg", "Äpfel 1 kg", "Pommes 1 kg"),
    (3, 9, "Cheese 200 g", "Käse 200 g", "Fromage 200 g"),
    (4, 15, "Wood screws (100)", "Holzschrauben (100)", "Vis à bois (100)"),
    (2, 9, "Light bulb E27", "Glühbirne E27", "Ampoule E27"),
    (5, 25, "Paperback", "Taschenbuch", "Livre de poche"),
)
_NUMBERS = {
    "invoice": {
        "en": ("INV-{y}-{n4}", "{n6}", "INV{n5}"),
        "de": ("RE-{y}-{n4}", "R{y}{n4}", "{n5}"),
        "fr": ("FA-{y}-{n4}", "F{y}-{n5}", "FAC{n6}"),
    },
    "purchase_order": {
        "en": ("PO-{y}-{n4}", "PO{n6}"),
        "de": ("BE-{y}-{n4}", "B{n6}"),
        "fr": ("BC-{y}-{n4}", "CMD{n6}"),
    },
    "receipt": {"en": ("{n4}", "{n3}-{n4}"), "de": ("{n4}", "{n6}"), "fr": ("{n6}", "{n3}-{n4}")},
}
