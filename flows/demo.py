"""Flow: the whole pipeline on the embedded default — simulate, harvest, grid, catalog, emissions, intake."""

from __future__ import annotations

import datetime as dt
from typing import Any

from prefect import flow

from flows.emissions import derive_daily_emissions
from flows.grid import build_daily_cube
from flows.harvest import harvest_granules
from flows.simulate import simulate_archive


@flow(name="demo")
def demo(
    lake: str,
    archive: str,
    start: dt.date,
    end: dt.date,
    bbox: tuple[float, float, float, float],
    resolution: float = 0.1,
    truth: str | None = None,
) -> dict[str, Any]:
    sim = simulate_archive(archive, start, end, bbox, truth)
    harvest = harvest_granules(sim["catalog"], "no2", start, end, lake)
    cube = build_daily_cube("no2", start, end, lake, resolution, bbox)
    emissions = derive_daily_emissions(lake, "no2", start, end, resolution, bbox)
    return {"lake": lake, "simulate": sim, "harvest": harvest, "grid": cube, "emissions": emissions}


def describe_demo(summary: dict[str, Any]) -> str:
    """What the demo left and the Python lines that open each artefact."""
    lake = summary["lake"]
    cube_url = summary["grid"]["cube"]
    release = summary["emissions"]["release"]
    table_url = f"{lake}/{summary['emissions']['key']}"
    h = summary["harvest"]
    lines = [
        "",
        "eolake demo finished.",
        f"  simulated upstream : {summary['simulate']['catalog']} ({summary['simulate']['granules']} granules)",
        f"  raw granules       : {lake}/raw/  ({h['fetched']} fetched, {h['skipped']} already there, "
        f"{len(h['quarantined'])} quarantined)",
        f"  ledger             : {lake}/ledger/granules.parquet, {lake}/ledger/cube_days.parquet",
        f"  daily NO2 cube     : {cube_url}",
        f"  STAC catalog       : {lake}/stac/catalog.json",
        f"  emissions table    : {table_url}  (release {release}, {summary['emissions']['rows']} rows)",
        f"  intake catalog     : {summary['emissions']['intake']}",
        "",
        "Open them in Python:",
        "  import xarray as xr",
        f"  cube = xr.open_zarr({cube_url!r}, zarr_format=3, consolidated=True)",
        "  import pandas as pd",
        f"  table = pd.read_parquet({table_url!r})",
        "  import pystac",
        f"  catalog = pystac.Catalog.from_file({lake + '/stac/catalog.json'!r})",
        "  import intake",
        f"  cat = intake.open_catalog({summary['emissions']['intake']!r}); cat.emissions.read()",
    ]
    for gid, reason in h["quarantined"]:
        lines.insert(5, f"    quarantined {gid}: {reason}")
    return "\n".join(lines)
