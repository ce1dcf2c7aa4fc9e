"""The truth behind a simulation: a Carbon Monitor CSV given by the user, or the built-in scenario for the
countries inside the domain."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from transforms.errors import TruthTableError
from transforms.grid import GridSpec
from transforms.regions import countries_in_grid
from transforms.truth import builtin_scenario, load_base_inventory, read_carbon_monitor_csv

_EMPTY = {
    "country": "str",
    "iso3": "str",
    "date": "datetime64[ns]",
    "sector": "str",
    "value": "float64",
    "is_aggregate": "bool",
}


def domain_countries(bounds: tuple[float, float, float, float]) -> list[str]:
    """ISO3 codes of inventory countries with land inside ``bounds``."""
    grid = GridSpec.snapped(0.25, bounds)
    known = set(load_base_inventory()["iso3"])
    return [c.iso3 for c in countries_in_grid(grid) if c.iso3 in known]


def load_truth(
    path: str | None, *, start: dt.date, end: dt.date, bounds: tuple[float, float, float, float]
) -> pd.DataFrame:
    """The truth table for ``start``…``end``: the CSV at ``path`` (validated) or the built-in scenario.
    Raises TruthTableError if the CSV does not cover the period."""
    if path is None:
        countries = domain_countries(bounds)
        if not countries:  # open ocean: granules see the background only
            return pd.DataFrame({c: pd.Series(dtype=t) for c, t in _EMPTY.items()})
        return builtin_scenario(start, end, countries=countries)
    table = read_carbon_monitor_csv(path)
    members = table[~table["is_aggregate"]] if "is_aggregate" in table else table
    dates = pd.to_datetime(members["date"]).dt.date
    missing = [d for d in pd.date_range(start, end, freq="D").date if d not in set(dates)]
    if missing:
        raise TruthTableError(
            f"truth file {path} has no rows for {len(missing)} day(s) of {start}…{end} (first: {missing[0]}); "
            "give a period the file covers"
        )
    return members[(dates >= start) & (dates <= end)].reset_index(drop=True)
