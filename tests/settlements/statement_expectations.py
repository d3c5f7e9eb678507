"""What tina's statement of `full_statement` (tests/settlements/conftest.py) must say, item by item, per language.

Worked out by hand from the building (tests/conftest.py consumption_building):
250,000.00 DKK, 30 % fixed = 75,000.00 over 14,822.5 m²·days (1 tv 72.5 m² × 121
days, 2 th 50 m² × 121) = 5.059875 DKK per m² and day; 175,000.00 over
8,128.4 kWh (paul 1,080, tina 1,823, 2 th 5,806 × 0.9) = 21.529452 DKK per kWh.
tina: 72.5 × 76 days → 27,879.91; 1,823 kWh → 39,248.19; together 67,128.10,
26.85 % of the total; 60,000.00 paid on account, 7,128.10 to pay.
Her meter 20000001 (in the bathroom) rises 1 kWh an hour from 0 on 1 Dec: 1,080 at her move-in
(15 Jan, 00:00), 2,903 at the end (1 Apr, 00:00), both read.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser


def text(html: str) -> str:
    """The visible text of a page, whitespace collapsed (no title, scripts or styles)."""

    class Visible(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.parts: list[str] = []
            self.hidden = 0

        def handle_starttag(self, tag: str, attrs: object) -> None:
            if tag in ("script", "style", "title"):
                self.hidden += 1

        def handle_endtag(self, tag: str) -> None:
            if tag in ("script", "style", "title"):
                self.hidden -= 1

        def handle_data(self, data: str) -> None:
            if not self.hidden:
                self.parts.append(data)

    parser = Visible()
    parser.feed(html)
    return collapse(" ".join(parser.parts))


def collapse(value: str) -> str:
    return re.sub(r"\s+", " ", value).strip()


# (what, the text it must contain) per language; the deadline is added by the tests from line.objection_deadline().
TINA = {
    "en": [
        ("landlord and address", "Landlord Organisation A Nørregade 1 1165 København K"),
        ("period", "Settlement period Dec. 1, 2024 – March 31, 2025"),
        ("issue date", "Issued June 2, 2025"),
        ("supplier's bill", "District heating, supplier's bill DKK 235,000.00"),
        ("other costs", "Meter reading and settlement DKK 15,000.00"),
        ("total cost", "Total cost to be shared DKK 250,000.00"),
        ("fixed pool and its price", "DKK 75,000.00 14,822.50 m²·days DKK 5.059875 per m² per day"),
        ("variable pool and its price", "DKK 175,000.00 8,128.400 kWh DKK 21.529452 per kWh"),
        ("tenant's full name", "Tina Hansen"),
        ("unit address", "Address Solvej 1 2100 København Ø, 1 tv"),
        ("tenancy dates", "Your tenancy in the period Jan. 15, 2025 – March 31, 2025 (76 days)"),
        ("meter number, type and location", "No. 20000001 Heat Badeværelse, under vasken"),
        ("register at the start, how obtained", "1,080.000 kWh Jan. 15, 2025, midnight: read"),
        ("register at the end, how obtained", "2,903.000 kWh April 1, 2025, midnight: read"),
        ("meter consumption", "read 1,823.000 kWh"),
        ("correction factor", "Correction factor 1.000"),
        ("fixed part", "Fixed part: 72.50 m² × 76 days × DKK 5.059875 DKK 27,879.91"),
        ("variable part", "Variable part: 1,823.000 kWh × DKK 21.529452 DKK 39,248.19"),
        ("share", "Your share (26.85 % of the total cost) DKK 67,128.10"),
        ("paid on account", "Paid on account DKK 60,000.00"),
        ("balance", "To pay DKK 7,128.10"),
        ("due date", "Please pay by Sept. 1, 2025."),
        ("how to object", "in writing to the landlord within six weeks of receiving it"),
        ("where to", "Write to: Organisation A Nørregade 1 1165 København K"),
        ("complaint body", "the rent tribunal (huslejenævnet) of the municipality where the property lies"),
        ("the landlord's six weeks", "within six weeks after the deadline to object (Lejeloven § 77)"),
    ],
    "da": [
        ("landlord and address", "Udlejer Organisation A Nørregade 1 1165 København K"),
        ("period", "Regnskabsperiode 1. december 2024 – 31. marts 2025"),
        ("issue date", "Udstedt 2. juni 2025"),
        ("supplier's bill", "District heating, supplier's bill 235.000,00 kr."),
        ("other costs", "Meter reading and settlement 15.000,00 kr."),
        ("total cost", "Samlede udgifter til fordeling 250.000,00 kr."),
        ("fixed pool and its price", "75.000,00 kr. 14.822,50 m²·dage 5,059875 kr. pr. m² pr. dag"),
        ("variable pool and its price", "175.000,00 kr. 8.128,400 kWh 21,529452 kr. pr. kWh"),
        ("tenant's full name", "Tina Hansen"),
        ("unit address", "Adresse Solvej 1 2100 København Ø, 1 tv"),
        ("tenancy dates", "Dit lejemål i perioden 15. januar 2025 – 31. marts 2025 (76 dage)"),
        ("meter number, type and location", "Nr. 20000001 Varme Badeværelse, under vasken"),
        ("register at the start, how obtained", "1.080,000 kWh 15. januar 2025 00:00: aflæst"),
        ("register at the end, how obtained", "2.903,000 kWh 1. april 2025 00:00: aflæst"),
        ("meter consumption", "aflæst 1.823,000 kWh"),
        ("correction factor", "Korrektionsfaktor 1,000"),
        ("fixed part", "Fast del: 72,50 m² × 76 dage × 5,059875 kr. 27.879,91 kr."),
        ("variable part", "Variabel del: 1.823,000 kWh × 21,529452 kr. 39.248,19 kr."),
        ("share", "Din andel (26,85 % af de samlede udgifter) 67.128,10 kr."),
        ("paid on account", "Betalt a conto 60.000,00 kr."),
        ("balance", "At betale 7.128,10 kr."),
        ("due date", "Betales senest 1. september 2025."),
        ("how to object", "skriftligt til udlejeren inden seks uger efter, at du har modtaget det"),
        ("where to", "Skriv til: Organisation A Nørregade 1 1165 København K"),
        ("complaint body", "huslejenævnet i den kommune, hvor ejendommen ligger"),
        ("the landlord's six weeks", "senest seks uger efter fristen for indsigelse (lejelovens § 77)"),
    ],
}
DEADLINE_LABEL = {"en": "Deadline to object", "da": "Frist for indsigelse"}
# Other tenants' figures: paul's share and balance.
NOT_TINAS = ["Paul Jensen", "39,759.65", "39.759,65", "2,240.35", "2.240,35"]


def missing(page_text: str, language: str, deadline: str) -> list[str]:
    """The items of tina's statement that `page_text` lacks (by name), for an assertion that names them."""
    expected = [*TINA[language], ("objection deadline", f"{DEADLINE_LABEL[language]} {deadline}")]
    return [what for what, said in expected if said not in page_text]
