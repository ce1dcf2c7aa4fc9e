"""The truth behind a simulation (a Carbon Monitor CSV given by the user, or the built-in scenario for the
countries inside the domain) and the OSSE's comparison of a release with it."""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

import pandas as pd

from infra.storage import Lake
from transforms.comparison import compare_tables, format_report, plot_country, plot_overview
from transforms.errors import TruthTableError
from transforms.grid import GridSpec
from transforms.regions import countries_in_grid
from transforms.truth import (
    builtin_scenario,
    load_base_inventory,
    read_carbon_monitor_csv,
    write_carbon_monitor_csv,
)

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


def write_scenario(
    path: str,
    *,
    start: dt.date,
    end: dt.date,
    bounds: tuple[float, float, float, float],
    countries: list[str] | None = None,
) -> dict[str, Any]:
    """Write the built-in truth for ``countries`` (default: the inventory countries in ``bounds``) as a
    Carbon Monitor CSV at ``path``; the first country gets the lockdown-like step when the period spans at
    least 21 days. Returns what was written."""
    chosen = countries or domain_countries(bounds)
    if not chosen:
        raise TruthTableError(f"no inventory country has land in bbox {bounds}; give --countries")
    table = builtin_scenario(start, end, countries=chosen)
    write_carbon_monitor_csv(table, path)
    step = table.attrs.get("lockdown") or {}
    return {
        "truth": path,
        "rows": len(table),
        "countries": sorted(set(table["iso3"])),
        "step": {k: str(v) for k, v in step.items()} if step else None,
    }


def compare_with_truth(lake: Lake, truth_path: str, *, release: str | None, out_dir: str) -> dict[str, Any]:
    """Score a release (default: the newest) against a truth CSV; writes ``report.txt``, ``scores.csv``,
    ``steps.csv``, ``overview.png`` and one ``<ISO3>.png`` per country into ``out_dir`` (a local folder)."""
    from infra.emissions import latest_release, read_release_checked  # dask: only when comparing

    truth = read_carbon_monitor_csv(truth_path)
    chosen = release or latest_release(lake)
    comparison = compare_tables(truth, read_release_checked(lake, chosen))
    os.makedirs(out_dir, exist_ok=True)
    report = format_report(comparison)
    with open(os.path.join(out_dir, "report.txt"), "w", encoding="utf-8") as f:
        f.write(f"release {chosen} vs truth {truth_path}\n{report}\n")
    comparison.table().to_csv(os.path.join(out_dir, "scores.csv"), index=False)
    comparison.steps().to_csv(os.path.join(out_dir, "steps.csv"), index=False)
    with open(os.path.join(out_dir, "overview.png"), "wb") as fb:
        plot_overview(comparison, fb)
    for score in comparison.scores:
        with open(os.path.join(out_dir, f"{score.iso3}.png"), "wb") as fb:
            plot_country(comparison, score.iso3, fb)
    return {
        "release": chosen,
        "report": report,
        "out": out_dir,
        "meets_goals": comparison.meets_goals,
        "countries": len(comparison.scores),
    }
