"""Word lists for generated tenants: names (with accents), titles, offices and phone plans."""

from __future__ import annotations

FIRST_NAMES: tuple[str, ...] = (
    "Anna", "Ben", "Clara", "David", "Elif", "Felix", "Greta", "Hannah", "Ida", "Jonas",
    "Karin", "Lukas", "Marie", "Nils", "Olga", "Paul", "Quentin", "Rosa", "Sven", "Tanja",
    "Ute", "Viktor", "Wiebke", "Xaver", "Yasmin", "Zoë", "Åsa", "Björn", "Çağla", "Dörte",
    "Émile", "François", "Gökhan", "Hélène", "Íñigo", "Jürgen", "Kübra", "Léa", "Małgorzata",
    "Noémie", "Øystein", "Pál", "Renée", "Sören", "Tomáš", "Ümit", "Zoltán", "Agnieszka",
    "Ahmet", "Aleksander", "Alice", "Amélie", "Andrea", "Antoine", "Astrid", "Beatriz",
    "Camille", "Carlos", "Chiara", "Christoph", "Dagmar", "Daniel", "Elena", "Emma", "Erik",
    "Fatma", "Francesca", "Frida", "Georg", "Giulia", "Hans", "Heike", "Ingrid", "Isabel",
    "Jan", "Javier", "Jens", "Johanna", "José", "Julia", "Katarzyna", "Klaus", "Lars",
    "Laura", "Lena", "Leon", "Lucía", "Magnus", "Maja", "Marco", "Martín", "Mateo", "Mia",
    "Mohammed", "Nadine", "Nina", "Oliver", "Paula", "Peter", "Piotr", "Rafael", "Ramón",
    "Sabine", "Sara", "Sebastian", "Sofia", "Stefan", "Thomas", "Tobias", "Ulrike", "Valentina",
    "Wojciech", "Yusuf", "Zeynep", "Žofie", "Ľubomír", "Ørjan", "Ægir", "Åke", "Joël",
)

LAST_NAMES: tuple[str, ...] = (
    "Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker",
    "Schulz", "Hoffmann", "Schäfer", "Koch", "Bauer", "Richter", "Klein", "Wolf", "Schröder",
    "Neumann", "Schwarz", "Zimmermann", "Braun", "Krüger", "Hofmann", "Hartmann", "Lange",
    "Schmitt", "Werner", "Krause", "Meier", "Lehmann", "Köhler", "Groß", "Weiß", "Jäger",
    "Dubois", "Lefèvre", "Girard", "Rousseau", "Fontaine", "Mercier", "Blanc", "Guérin",
    "García", "Fernández", "González", "Rodríguez", "López", "Martínez", "Sánchez", "Pérez",
    "Gómez", "Muñoz", "Rossi", "Russo", "Ferrari", "Esposito", "Bianchi", "Romano", "Colombo",
    "Ricci", "Marino", "Greco", "Nowak", "Kowalski", "Wiśniewski", "Wójcik", "Kamiński",
    "Lewandowski", "Zieliński", "Szymański", "Dąbrowski", "Yılmaz", "Kaya", "Demir", "Şahin",
    "Çelik", "Yıldız", "Öztürk", "Aydın", "Andersson", "Johansson", "Karlsson", "Nilsson",
    "Eriksson", "Larsson", "Ødegård", "Håkansson", "Lindström", "Björklund", "Novák",
    "Dvořák", "Svoboda", "Černý", "Procházka", "Kovács", "Szabó", "Tóth", "Horváth",
    "Nagy", "Smith", "Johnson", "Williams", "Brown", "Jones", "Miller", "Davis", "Wilson",
    "O'Brien", "McCarthy", "Van der Berg", "De Vries", "Jansen", "Bakker", "Visser", "Smit",
    "Peeters", "Janssens", "Maes", "Nguyen", "Tran", "Le", "Kim", "Park", "Lee", "Chen",
    "Wang", "Li", "Zhang", "Silva", "Santos", "Oliveira", "Sousa", "Costa", "Pereira",
)

JOB_TITLES: tuple[str | None, ...] = (
    "Sales Manager", "Account Executive", "Support Engineer", "Software Developer",
    "Team Lead", "Accountant", "HR Specialist", "Receptionist", "Project Manager",
    "Marketing Specialist", "Consultant", "Service Technician", "Controller", "Buyer",
    "Warehouse Clerk", "Chief Executive Officer", None, None,
)

# Office, country dialling code, area code, national trunk prefix, mobile prefixes.
OFFICES: tuple[tuple[str, str, str, str, tuple[str, ...]], ...] = (
    ("Berlin", "49", "30", "0", ("151", "160", "170", "176")),
    ("München", "49", "89", "0", ("152", "162", "172", "179")),
    ("Hamburg", "49", "40", "0", ("157", "163", "173", "177")),
    ("Wien", "43", "1", "0", ("664", "676", "699")),
    ("Zürich", "41", "44", "0", ("76", "78", "79")),
    ("Paris", "33", "1", "0", ("6", "7")),
    ("Madrid", "34", "91", "", ("6", "7")),
    ("Milano", "39", "02", "", ("3",)),
    ("Warszawa", "48", "22", "", ("50", "60", "69")),
    ("London", "44", "20", "0", ("7700", "7911")),
    ("Stockholm", "46", "8", "0", ("70", "72", "73")),
    ("İstanbul", "90", "212", "0", ("532", "542", "555")),
)

# Licensing facts (Microsoft's product names and service plan identifiers table).
E3_SKU_ID = "6fd2c87f-b296-42f0-b197-1e91e994b900"  # ENTERPRISEPACK, Office 365 E3
EXCHANGE_PLAN_ID = "efb87545-963c-4e0d-99df-69c6916d9eb0"  # EXCHANGE_S_ENTERPRISE

# Transliteration for mail addresses (German style for umlauts; others lose the accent).
ASCII_FOLD: dict[str, str] = {
    "ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "æ": "ae", "ø": "oe", "å": "aa",
    "ł": "l", "đ": "d", "ı": "i", "þ": "th", "œ": "oe",
}
