"""Carbon Monitor daily tables: CSV reading and writing, the base-year inventory, and a built-in truth.

A Carbon Monitor table has one row per (country, date, sector) with ``value`` in MtCO2/day. In memory it is a
DataFrame with columns ``country`` (Carbon Monitor name, or the aggregate's code), ``iso3`` (ISO 3166-1
alpha-3, or the aggregate's code), ``date`` (datetime64[ns], midnight), ``sector`` (one of :data:`SECTORS`),
``value`` (float64, MtCO2/day) and ``is_aggregate`` (bool: EU27, EU27 & UK, ROW, WORLD rows, which are never
summed with their members).
"""

from __future__ import annotations

import io
import os
import zlib
from collections.abc import Sequence
from datetime import date
from functools import lru_cache
from importlib import resources
from typing import IO, Any

import numpy as np
import pandas as pd

from transforms.errors import TruthTableError
from transforms.profiles import TRUTH
from transforms.regions import aggregate_code, resolve_country

SECTORS: tuple[str, ...] = (
    "Power",
    "Industry",
    "Ground Transport",
    "Residential",
    "Domestic Aviation",
    "International Aviation",
)
COLUMNS: tuple[str, ...] = ("country", "iso3", "date", "sector", "value", "is_aggregate")
_DATE_FORMAT = "%d/%m/%Y"

Source = str | os.PathLike[str] | IO[str] | IO[bytes]


def _read_text(source: Source) -> tuple[str, str]:
    """The file's text and a label for messages."""
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        try:
            with open(path, encoding="utf-8-sig") as f:
                return f.read(), path
        except FileNotFoundError:
            raise TruthTableError(
                f"Carbon Monitor CSV not found: {path}; check the path (download it from carbonmonitor.org)"
            ) from None
        except IsADirectoryError:
            raise TruthTableError(
                f"{path} is a directory; give the path of a Carbon Monitor CSV file"
            ) from None
    data = source.read()
    label = str(getattr(source, "name", "<file object>"))
    if isinstance(data, bytes):
        data = data.decode("utf-8-sig")
    return data.lstrip("\ufeff"), label


def read_carbon_monitor_csv(source: Source) -> pd.DataFrame:
    """Read a Carbon Monitor CSV (path or file object) into the table described in the module docstring.

    Accepts the real variants: ``value`` or ``MtCO2`` as the value column, a trailing empty column, an extra
    ``timestamp`` column, dates ``DD/MM/YYYY``. Raises :class:`TruthTableError` naming the file and row (the
    file's line number) for a missing file, missing columns, an unknown sector or country, a malformed date,
    a missing, non-numeric or negative value, or a duplicated (country, date, sector).
    """
    text, label = _read_text(source)
    try:
        raw = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, skip_blank_lines=True)
    except pd.errors.EmptyDataError:
        raise TruthTableError(f"{label}: empty file; expected the header country,date,sector,value") from None
    except pd.errors.ParserError as exc:
        raise TruthTableError(
            f"{label}: not a readable CSV ({exc}); expected country,date,sector,value"
        ) from None
    raw.columns = [str(c).strip() for c in raw.columns]
    names = {c.casefold(): c for c in raw.columns}
    value_col = names.get("value", names.get("mtco2"))
    missing = [c for c in ("country", "date", "sector") if c not in names]
    if missing or value_col is None:
        raise TruthTableError(
            f"{label}: columns {raw.columns.tolist()} lack {missing + ([] if value_col else ['value'])}; "
            "expected country,date,sector,value (or MtCO2), optionally timestamp"
        )
    for c in raw.columns:
        known = c.casefold() in ("country", "date", "sector", "value", "mtco2", "timestamp")
        if not known and not (c.startswith("Unnamed:") and (raw[c].str.strip() == "").all()):
            raise TruthTableError(
                f"{label}: unexpected column {c!r}; expected country,date,sector,value (or MtCO2), "
                "optionally timestamp and a trailing empty column"
            )
    if raw.empty:
        raise TruthTableError(f"{label}: no data rows below the header")
    line = pd.Series(np.arange(len(raw)) + 2, index=raw.index)  # header is line 1

    def fail(bad: pd.Series, what: str, column: str) -> None:
        first = bad.idxmax()
        raise TruthTableError(
            f"{label}, line {line[first]}: {what} {raw.at[first, column]!r}"
            + (f" ({int(bad.sum())} such rows)" if bad.sum() > 1 else "")
        )

    sector_of = {s.casefold(): s for s in SECTORS}
    sector = raw[names["sector"]].str.strip().str.casefold().map(sector_of)
    if sector.isna().any():
        fail(sector.isna(), f"unknown sector (valid sectors: {', '.join(SECTORS)}):", names["sector"])

    countries = raw[names["country"]].str.strip()
    resolved: dict[str, tuple[str, str, bool]] = {}
    for name in countries.unique():
        code = aggregate_code(name)
        if code is not None:
            resolved[name] = (code, code, True)
            continue
        try:
            c = resolve_country(name)
        except TruthTableError as exc:
            bad = countries == name
            raise TruthTableError(f"{label}, line {line[bad.idxmax()]}: {exc}") from None
        resolved[name] = (c.cm_name, c.iso3, False)

    dates = pd.to_datetime(raw[names["date"]].str.strip(), format=_DATE_FORMAT, errors="coerce")
    if dates.isna().any():
        fail(dates.isna(), "malformed date (expected DD/MM/YYYY):", names["date"])

    values = pd.to_numeric(raw[value_col].str.strip(), errors="coerce")
    if values.isna().any():
        fail(values.isna(), "missing or non-numeric value:", value_col)
    if (~np.isfinite(values)).any():
        fail(~np.isfinite(values), "non-finite value:", value_col)
    if (values < 0).any():
        fail(values < 0, "negative value (emissions are MtCO2/day >= 0):", value_col)

    out = pd.DataFrame(
        {
            "country": countries.map(lambda n: resolved[n][0]).astype(str),
            "iso3": countries.map(lambda n: resolved[n][1]).astype(str),
            "date": dates.astype("datetime64[ns]"),
            "sector": sector.astype(str),
            "value": values.astype(np.float64),
            "is_aggregate": countries.map(lambda n: resolved[n][2]).astype(bool),
        }
    )
    dup = out.duplicated(["iso3", "date", "sector"], keep="first")
    if dup.any():
        fail(dup, "duplicated (country, date, sector) row for country", names["country"])
    return out.reset_index(drop=True)


def write_carbon_monitor_csv(df: pd.DataFrame, target: str | os.PathLike[str] | IO[str]) -> None:
    """Write ``country,date,sector,value`` (dates DD/MM/YYYY, Carbon Monitor's layout) to a path or file.

    ``df`` needs columns country, date, sector, value (MtCO2/day); other columns are dropped. Values are
    written at full precision so that reading the file back gives the same numbers.
    """
    missing = [c for c in ("country", "date", "sector", "value") if c not in df.columns]
    if missing:
        raise TruthTableError(
            f"cannot write a Carbon Monitor CSV: columns {missing} are missing from the table"
        )
    out = pd.DataFrame(
        {
            "country": df["country"].astype(str),
            "date": pd.to_datetime(df["date"]).dt.strftime(_DATE_FORMAT),
            "sector": df["sector"].astype(str),
            "value": df["value"].astype(np.float64),
        }
    )
    if isinstance(target, (str, os.PathLike)):
        out.to_csv(os.fspath(target), index=False, lineterminator="\n")
    else:
        out.to_csv(target, index=False, lineterminator="\n")


@lru_cache(maxsize=1)
def _base_inventory() -> pd.DataFrame:
    with resources.files("transforms.data").joinpath("base_inventory_2019.csv").open("rb") as f:
        df = pd.read_csv(f, dtype={"iso3": str, "country": str, "sector": str, "annual_mt": np.float64})
    return df


def load_base_inventory() -> pd.DataFrame:
    """The vendored 2019 base-year inventory: columns iso3, country, sector, annual_mt (MtCO2/yr).

    A demonstration table of rounded approximations (see transforms/data/PROVENANCE.md); ``iso3 == "ROW"``
    holds the rest of the world. Both the built-in truth and the emissions method's prior read it.
    """
    return _base_inventory().copy()


# --- the built-in truth ("the real world" of the simulation experiment) ------------------------------------

_NOISE_SD = {"Residential": 0.05}  # relative day-to-day noise; 0.03 for the other sectors
_LOCKDOWN_FACTOR = 0.78  # a 22% drop of every sector but Residential
_LOCKDOWN_OFFSET_DAYS = 5
_LOCKDOWN_DAYS = 14


def _hash_uniform(keys: np.ndarray) -> np.ndarray:
    """Deterministic uniforms in [0, 1) from uint64 keys (splitmix64 finaliser)."""
    z = keys.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(2**53)


def _hash_normal(key: int, days: np.ndarray) -> np.ndarray:
    """Approximately standard-normal deterministic noise per day (Irwin-Hall of 4 uniforms, bounded ±3.5)."""
    base = (np.uint64(key) << np.uint64(24)) ^ days.astype(np.uint64)
    u = np.zeros(days.shape, dtype=np.float64)
    for j in range(4):
        u += _hash_uniform(base * np.uint64(4) + np.uint64(j))
    out: np.ndarray = (u - 2.0) * np.sqrt(3.0)
    return out


def _as_date(value: str | date | pd.Timestamp, what: str) -> pd.Timestamp:
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError):
        raise TruthTableError(f"{what} {value!r} is not a date; give YYYY-MM-DD") from None
    return ts.normalize()


def builtin_scenario(
    start: str | date | pd.Timestamp,
    end: str | date | pd.Timestamp,
    *,
    countries: Sequence[str],
    seed: int = 0,
) -> pd.DataFrame:
    """A realistic, deterministic daily truth table for ``countries`` (ISO3 codes) from ``start`` to ``end``.

    value = base-year annual (:func:`load_base_inventory`) / 365 × weekly factor (weekend dip, Sunday ~0.8
    for Power/Industry/Ground Transport) × seasonal factor (winter peak for Power and Residential, flipped in
    the southern hemisphere; both :data:`transforms.profiles.TRUTH`) × (1 + small noise; sd 3%, 5% for
    Residential). The noise is a hash of (seed, country, sector, day), so overlapping periods agree day by
    day. When the period spans at least 21 days the FIRST country gets a lockdown-like step: every sector but
    Residential × 0.78 for 14 days starting 5 days after ``start``; ``df.attrs["lockdown"]`` describes it.
    Columns as :func:`read_carbon_monitor_csv`.
    """
    t0, t1 = _as_date(start, "start"), _as_date(end, "end")
    if t1 < t0:
        raise TruthTableError(f"end {t1.date()} is before start {t0.date()}; swap them")
    if not countries:
        raise TruthTableError("builtin_scenario needs at least one country (ISO3 codes such as DEU)")
    inventory = _base_inventory()
    available = sorted(set(inventory["iso3"]) - {"ROW"})
    dates = pd.date_range(t0, t1, freq="D")
    days = ((dates - pd.Timestamp("1970-01-01")) // pd.Timedelta(days=1)).to_numpy(dtype=np.int64)
    lockdown: dict[str, Any] = {}
    if len(dates) >= 21:
        ld0 = t0 + pd.Timedelta(days=_LOCKDOWN_OFFSET_DAYS)
        lockdown = {
            "iso3": resolve_country(countries[0]).iso3,
            "start": ld0,
            "end": ld0 + pd.Timedelta(days=_LOCKDOWN_DAYS - 1),
            "factor": _LOCKDOWN_FACTOR,
            "sectors": [s for s in SECTORS if s != "Residential"],
        }
    frames = []
    for code in countries:
        country = resolve_country(code)
        rows = inventory[inventory["iso3"] == country.iso3]
        if rows.empty:
            raise TruthTableError(
                f"no base-inventory entry for {country.cm_name} ({country.iso3}); "
                f"builtin_scenario knows {', '.join(available)}"
            )
        hemisphere = 1.0 if country.geometry.representative_point().y >= 0 else -1.0
        annual = dict(zip(rows["sector"], rows["annual_mt"], strict=True))
        for k, sector in enumerate(SECTORS):
            factor = TRUTH.factor(dates, sector, hemisphere)
            key = zlib.crc32(f"{seed}|{country.iso3}|{k}".encode())
            factor = factor * (1.0 + _NOISE_SD.get(sector, 0.03) * _hash_normal(key, days))
            if lockdown and country.iso3 == lockdown["iso3"] and sector in lockdown["sectors"]:
                factor = (
                    np.where((dates >= lockdown["start"]) & (dates <= lockdown["end"]), _LOCKDOWN_FACTOR, 1.0)
                    * factor
                )
            frames.append(
                pd.DataFrame(
                    {
                        "country": country.cm_name,
                        "iso3": country.iso3,
                        "date": dates.astype("datetime64[ns]"),
                        "sector": sector,
                        "value": annual.get(sector, 0.0) / 365.0 * factor,
                        "is_aggregate": False,
                    }
                )
            )
    out = pd.concat(frames, ignore_index=True)
    out.attrs["lockdown"] = lockdown
    return out
