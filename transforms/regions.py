"""Countries, their names in Carbon Monitor's vocabulary, and country masks on a :class:`GridSpec`.

Boundaries are Natural Earth 1:110m admin-0 countries vendored in ``transforms/data`` (see its PROVENANCE.md).
A country's ``cm_name`` is the spelling Carbon Monitor uses in its CSV files (global and EU editions:
"United States", "United Kingdom", "Russia", "Czech Republic", "South Korea", ...); for countries Carbon
Monitor does not list separately it is Natural Earth's name with abbreviations spelled out
("Dem. Rep. Congo" → "Democratic Republic of the Congo"). Aggregates (EU27, EU27 & UK, ROW, WORLD) are not
countries: see :data:`AGGREGATES` and :func:`aggregate_code`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources

import numpy as np
import shapely
import xarray as xr

from transforms.errors import TruthTableError
from transforms.grid import GridSpec

#: EU member states since 1 February 2020 (ISO 3166-1 alpha-3).
EU27: tuple[str, ...] = (
    "AUT", "BEL", "BGR", "HRV", "CYP", "CZE", "DNK", "EST", "FIN", "FRA", "DEU", "GRC", "HUN", "IRL",
    "ITA", "LVA", "LTU", "LUX", "MLT", "NLD", "POL", "PRT", "ROU", "SVK", "SVN", "ESP", "SWE",
)  # fmt: skip

#: Countries Carbon Monitor's global edition lists separately (China, India, United States, the EU27
#: members, United Kingdom, Russia, Japan, Brazil): its ROW ("rest of the world") is WORLD minus these.
ROW_EXCLUDES: tuple[str, ...] = ("CHN", "IND", "USA", *EU27, "GBR", "RUS", "JPN", "BRA")

#: Carbon Monitor's aggregate regions (code → description). Never summed with member countries.
AGGREGATES: dict[str, str] = {
    "EU27": "European Union, 27 members",
    "EU27 & UK": "European Union, 27 members, and the United Kingdom (older Carbon Monitor files)",
    "ROW": "rest of the world (countries Carbon Monitor does not list separately)",
    "WORLD": "world total (the domain total for regional runs)",
}
_AGGREGATE_ALIASES = {"EU27&UK": "EU27 & UK", "EU28": "EU27 & UK", "EU": "EU27", "GLOBAL": "WORLD"}

# Natural Earth name → Carbon Monitor's spelling (or a spelled-out name where NE abbreviates).
_CM_NAMES = {
    "United States of America": "United States",
    "Czechia": "Czech Republic",
    "Dem. Rep. Congo": "Democratic Republic of the Congo",
    "Central African Rep.": "Central African Republic",
    "Dominican Rep.": "Dominican Republic",
    "Bosnia and Herz.": "Bosnia and Herzegovina",
    "Eq. Guinea": "Equatorial Guinea",
    "S. Sudan": "South Sudan",
    "Solomon Is.": "Solomon Islands",
    "Falkland Is.": "Falkland Islands",
    "W. Sahara": "Western Sahara",
    "Fr. S. Antarctic Lands": "French Southern and Antarctic Lands",
    "N. Cyprus": "Northern Cyprus",
    "eSwatini": "Eswatini",
}
# Other spellings seen in inventories and older Carbon Monitor files.
_ALIASES = {
    "US": "USA",
    "U.S.": "USA",
    "UK": "GBR",
    "Great Britain": "GBR",
    "Russian Federation": "RUS",
    "Republic of Korea": "KOR",
    "Korea": "KOR",
    "Türkiye": "TUR",
    "Turkiye": "TUR",
    "Viet Nam": "VNM",
    "Iran (Islamic Republic of)": "IRN",
    "The Netherlands": "NLD",
    "Slovak Republic": "SVK",
}


@dataclass(frozen=True)
class Country:
    """A country: ISO 3166-1 alpha-3 code, names, continent, boundary (lon/lat degrees, EPSG:4326)."""

    iso3: str
    name: str  # Natural Earth's name
    cm_name: str  # Carbon Monitor's name
    continent: str
    geometry: shapely.Geometry = field(repr=False)


@lru_cache(maxsize=1)
def _countries() -> tuple[Country, ...]:
    text = (
        resources.files("transforms.data").joinpath("naturalearth_110m_countries.geojson").read_text("utf-8")
    )
    out = []
    for feature in json.loads(text)["features"]:
        props = feature["properties"]
        geometry = shapely.geometry.shape(feature["geometry"])
        if not geometry.is_valid:  # Sudan and North Korea self-touch at 1:110m
            geometry = shapely.make_valid(geometry)
        geometry = shapely.union_all(
            shapely.get_parts(geometry)[shapely.get_type_id(shapely.get_parts(geometry)) >= 3]
        )
        name = str(props["name"])
        out.append(
            Country(str(props["iso_a3"]), name, _CM_NAMES.get(name, name), str(props["continent"]), geometry)
        )
    return tuple(out)


def load_countries() -> list[Country]:
    """All vendored countries (Natural Earth 1:110m plus Malta), in file order; parsed once and cached."""
    return list(_countries())


@lru_cache(maxsize=1)
def _lookup() -> dict[str, Country]:
    table: dict[str, Country] = {}
    for country in _countries():
        for key in (country.iso3, country.name, country.cm_name):
            table[key.casefold()] = country
    by_iso3 = {c.iso3: c for c in _countries()}
    for alias, iso3 in _ALIASES.items():
        table[alias.casefold()] = by_iso3[iso3]
    return table


def aggregate_code(name: str) -> str | None:
    """The aggregate's code in :data:`AGGREGATES` if ``name`` is one (case-insensitive), else None."""
    key = name.strip().upper()
    key = _AGGREGATE_ALIASES.get(key.replace(" ", ""), key)
    return key if key in AGGREGATES else None


def resolve_country(name_or_iso3: str) -> Country:
    """The country named by a Carbon Monitor name, a Natural Earth name, an ISO3 code or a common alias.

    Case-insensitive. Aggregates are not countries: check :func:`aggregate_code` first.
    """
    key = " ".join(str(name_or_iso3).split()).casefold()
    country = _lookup().get(key)
    if country is not None:
        return country
    if aggregate_code(name_or_iso3) is not None:
        raise TruthTableError(
            f"{name_or_iso3!r} is an aggregate region, not a country; check aggregate_code() before resolving"
        )
    by_iso3 = {c.iso3: c for c in _countries()}
    examples = ", ".join(by_iso3[code].cm_name for code in _EXAMPLES)
    raise TruthTableError(
        f"unknown country {name_or_iso3!r}; known names include {examples}, ... (Carbon Monitor or Natural "
        f"Earth names, or ISO 3166-1 alpha-3 codes such as DEU); aggregates are {', '.join(AGGREGATES)}"
    )


_EXAMPLES = ("CHN", "USA", "IND", "RUS", "JPN", "DEU", "GBR", "FRA", "ITA", "CZE", "BRA")


def _rasterise(grid: GridSpec, countries: tuple[Country, ...]) -> np.ndarray:
    lat = grid.lat()
    lon = (grid.lon() + 180.0) % 360.0 - 180.0  # boundaries live in [-180, 180]
    out = np.full(grid.shape, -1, dtype=np.int16)
    for k, country in enumerate(countries):
        for part in shapely.get_parts(country.geometry):
            west, south, east, north = part.bounds
            r0, r1 = np.searchsorted(lat, south), np.searchsorted(lat, north, side="right")
            cols = np.flatnonzero((lon >= west) & (lon <= east))
            if r0 >= r1 or cols.size == 0:
                continue
            shapely.prepare(part)
            inside = shapely.contains_xy(part, lon[cols][None, :], lat[r0:r1, None])
            block = out[r0:r1, cols]
            block[inside & (block < 0)] = k
            out[r0:r1, cols] = block
    # A country holding no cell centre takes the cell of its representative point, unless that cell is
    # the only one of another country.
    counts = np.bincount(out[out >= 0], minlength=len(countries))
    for small in np.flatnonzero(counts == 0).tolist():
        point = countries[small].geometry.representative_point()
        idx = int(grid.cell_index(np.array([point.y]), np.array([point.x]))[0])
        owner = int(out.flat[idx]) if idx >= 0 else -2
        if owner == -1 or (owner >= 0 and counts[owner] > 1):
            if owner >= 0:
                counts[owner] -= 1
            out.flat[idx] = small
            counts[small] = 1
    return out


@lru_cache(maxsize=8)
def _cached_mask(grid: GridSpec, countries: tuple[Country, ...]) -> np.ndarray:
    mask = _rasterise(grid, countries)
    mask.flags.writeable = False
    return mask


def country_mask(grid: GridSpec, countries: list[Country] | None = None) -> xr.DataArray:
    """Index of the country each cell centre lies in, dims (lat, lon), int16; -1 for none (ocean, outside).

    ``countries`` defaults to :func:`load_countries`; the index refers to that list, and
    ``attrs["countries_iso3"]`` lists its ISO3 codes in the same order. A country too small to contain
    any cell centre gets the cell holding its representative point (unless that is another country's only
    cell), so Luxembourg or Malta keep a cell on coarse grids. Cells
    of a grid that crosses the antimeridian (lon > 180) are wrapped before testing. Cached per grid and
    country list; cell centres are tested with shapely's ``contains_xy`` within each polygon's bbox.
    """
    chosen = _countries() if countries is None else tuple(countries)
    data = _cached_mask(grid, chosen).copy()
    return xr.DataArray(
        data,
        dims=("lat", "lon"),
        coords={"lat": grid.lat(), "lon": grid.lon()},
        name="country",
        attrs={
            "long_name": "index of the country containing the cell centre",
            "flag_missing": -1,
            "countries_iso3": [c.iso3 for c in chosen],
            "source": "Natural Earth 1:110m admin-0 countries (public domain)",
        },
    )


def mask_countries(mask: xr.DataArray) -> list[Country]:
    """The countries a mask from :func:`country_mask` indexes, in index order."""
    codes = mask.attrs.get("countries_iso3")
    if codes is None:
        raise TruthTableError(
            "mask has no 'countries_iso3' attribute; build it with regions.country_mask(grid)"
        )
    return [resolve_country(str(code)) for code in codes]


def countries_in_grid(grid: GridSpec) -> list[Country]:
    """Countries with at least one cell in ``grid`` (see :func:`country_mask`), in file order."""
    present = np.unique(_cached_mask(grid, _countries()))
    return [_countries()[k] for k in present if k >= 0]
