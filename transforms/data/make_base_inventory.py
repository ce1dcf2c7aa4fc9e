"""One-off generator of ``base_inventory_2019.csv`` (a demonstration inventory; see PROVENANCE.md).

Not imported by the product. ``uv run python transforms/data/make_base_inventory.py`` rewrites the CSV.

Totals are ROUNDED APPROXIMATIONS of published 2019 national fossil CO2 emissions (territorial, incl.
cement; Global Carbon Budget 2020 order of magnitude), in MtCO2/yr. Sector splits are approximate typical
shares per country type, not measured values. ROW is the remainder to a world total of 35,000 MtCO2/yr
(Carbon Monitor's 2019 level, ~96 Mt/day, which excludes international shipping).
"""

from __future__ import annotations

import csv
from pathlib import Path

OUT = Path(__file__).with_name("base_inventory_2019.csv")
WORLD_TOTAL_MT = 35_000.0
SECTORS = (
    "Power",
    "Industry",
    "Ground Transport",
    "Residential",
    "Domestic Aviation",
    "International Aviation",
)

# Share profiles: Power, Industry, Ground Transport, Residential, Domestic Aviation, International Aviation.
SHARES: dict[str, tuple[float, float, float, float, float, float]] = {
    "europe": (0.27, 0.27, 0.27, 0.15, 0.01, 0.03),
    "power_heavy_europe": (0.45, 0.22, 0.20, 0.10, 0.01, 0.02),
    "nuclear_hydro_europe": (0.08, 0.30, 0.38, 0.14, 0.02, 0.08),
    "island": (0.60, 0.08, 0.25, 0.02, 0.00, 0.05),
    "east_asia": (0.42, 0.30, 0.17, 0.07, 0.01, 0.03),
    "oil_state": (0.40, 0.30, 0.22, 0.05, 0.01, 0.02),
    "coal_emerging": (0.52, 0.28, 0.12, 0.06, 0.01, 0.01),
    "emerging": (0.38, 0.32, 0.20, 0.07, 0.01, 0.02),
    "latin": (0.25, 0.30, 0.35, 0.06, 0.02, 0.02),
    "row": (0.36, 0.28, 0.20, 0.12, 0.02, 0.02),
    "CHN": (0.46, 0.38, 0.09, 0.05, 0.01, 0.01),
    "IND": (0.49, 0.29, 0.13, 0.07, 0.01, 0.01),
    "USA": (0.32, 0.22, 0.31, 0.11, 0.03, 0.01),
    "CAN": (0.11, 0.45, 0.28, 0.12, 0.02, 0.02),
    "RUS": (0.48, 0.26, 0.14, 0.09, 0.02, 0.01),
    "DEU": (0.33, 0.25, 0.23, 0.15, 0.01, 0.03),
    "FRA": (0.08, 0.28, 0.37, 0.20, 0.02, 0.05),
    "GBR": (0.20, 0.22, 0.32, 0.19, 0.01, 0.06),
    "ITA": (0.26, 0.25, 0.31, 0.15, 0.01, 0.02),
    "ESP": (0.22, 0.27, 0.35, 0.09, 0.02, 0.05),
    "POL": (0.45, 0.24, 0.17, 0.12, 0.00, 0.02),
    "NLD": (0.30, 0.30, 0.20, 0.14, 0.00, 0.06),
    "LUX": (0.02, 0.25, 0.60, 0.10, 0.00, 0.03),
    "NOR": (0.04, 0.55, 0.28, 0.03, 0.05, 0.05),
    "CHE": (0.03, 0.25, 0.40, 0.25, 0.00, 0.07),
    "AUS": (0.45, 0.25, 0.20, 0.05, 0.03, 0.02),
    "BRA": (0.15, 0.33, 0.40, 0.06, 0.03, 0.03),
}

# iso3, Carbon Monitor name, MtCO2/yr (rounded), share profile
COUNTRIES: list[tuple[str, str, float, str]] = [
    ("CHN", "China", 10175, "CHN"),
    ("USA", "United States", 5285, "USA"),
    ("IND", "India", 2616, "IND"),
    ("RUS", "Russia", 1678, "RUS"),
    ("JPN", "Japan", 1107, "east_asia"),
    ("IRN", "Iran", 780, "oil_state"),
    ("DEU", "Germany", 702, "DEU"),
    ("IDN", "Indonesia", 618, "emerging"),
    ("KOR", "South Korea", 611, "east_asia"),
    ("SAU", "Saudi Arabia", 582, "oil_state"),
    ("CAN", "Canada", 577, "CAN"),
    ("ZAF", "South Africa", 479, "coal_emerging"),
    ("BRA", "Brazil", 466, "BRA"),
    ("MEX", "Mexico", 439, "latin"),
    ("AUS", "Australia", 411, "AUS"),
    ("TUR", "Turkey", 405, "emerging"),
    ("GBR", "United Kingdom", 365, "GBR"),
    ("ITA", "Italy", 331, "ITA"),
    ("FRA", "France", 324, "FRA"),
    ("POL", "Poland", 323, "POL"),
    ("KAZ", "Kazakhstan", 295, "coal_emerging"),
    ("THA", "Thailand", 288, "emerging"),
    ("TWN", "Taiwan", 281, "east_asia"),
    ("MYS", "Malaysia", 255, "emerging"),
    ("ESP", "Spain", 253, "ESP"),
    ("VNM", "Vietnam", 247, "coal_emerging"),
    ("EGY", "Egypt", 247, "oil_state"),
    ("ARE", "United Arab Emirates", 200, "oil_state"),
    ("PAK", "Pakistan", 200, "emerging"),
    ("UKR", "Ukraine", 197, "power_heavy_europe"),
    ("IRQ", "Iraq", 196, "oil_state"),
    ("ARG", "Argentina", 179, "latin"),
    ("DZA", "Algeria", 171, "oil_state"),
    ("NLD", "Netherlands", 157, "NLD"),
    ("PHL", "Philippines", 147, "coal_emerging"),
    ("CZE", "Czech Republic", 104, "power_heavy_europe"),
    ("BEL", "Belgium", 96, "europe"),
    ("ROU", "Romania", 75, "europe"),
    ("AUT", "Austria", 67, "europe"),
    ("GRC", "Greece", 65, "power_heavy_europe"),
    ("HUN", "Hungary", 50, "europe"),
    ("PRT", "Portugal", 48, "europe"),
    ("FIN", "Finland", 42, "europe"),
    ("SWE", "Sweden", 42, "nuclear_hydro_europe"),
    ("NOR", "Norway", 42, "NOR"),
    ("BGR", "Bulgaria", 41, "power_heavy_europe"),
    ("IRL", "Ireland", 37, "europe"),
    ("CHE", "Switzerland", 37, "CHE"),
    ("SVK", "Slovakia", 33, "europe"),
    ("DNK", "Denmark", 32, "europe"),
    ("HRV", "Croatia", 18, "europe"),
    ("SVN", "Slovenia", 13.6, "europe"),
    ("LTU", "Lithuania", 13.4, "europe"),
    ("EST", "Estonia", 12, "power_heavy_europe"),
    ("LUX", "Luxembourg", 9.6, "LUX"),
    ("LVA", "Latvia", 7.6, "europe"),
    ("CYP", "Cyprus", 7.3, "island"),
    ("MLT", "Malta", 1.6, "island"),
]


def main() -> None:
    rows: list[tuple[str, str, str, float]] = []
    for iso3, name, total, profile in COUNTRIES:
        shares = SHARES[profile]
        assert abs(sum(shares) - 1.0) < 1e-9, profile
        rows += [(iso3, name, s, round(total * f, 2)) for s, f in zip(SECTORS, shares, strict=True)]
    row_total = WORLD_TOTAL_MT - sum(total for _, _, total, _ in COUNTRIES)
    rows += [("ROW", "ROW", s, round(row_total * f, 2)) for s, f in zip(SECTORS, SHARES["row"], strict=True)]
    with OUT.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["iso3", "country", "sector", "annual_mt"])
        writer.writerows(rows)
    print(
        f"wrote {OUT}: {len(COUNTRIES)} countries + ROW ({row_total:.0f} Mt), world {WORLD_TOTAL_MT:.0f} Mt"
    )


if __name__ == "__main__":
    main()
