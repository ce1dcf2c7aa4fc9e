"""Flow: backfill a date range — harvest, grid and derive, in order, for days an operator names."""

from __future__ import annotations

import datetime as dt
from typing import Any

from prefect import flow

from flows.emissions import derive_daily_emissions
from flows.grid import build_daily_cube
from flows.harvest import harvest_granules


@flow(name="backfill")
def backfill(
    source: str,
    start: dt.date,
    end: dt.date,
    lake: str,
    product: str = "no2",
    resolution: float = 0.1,
    bbox: tuple[float, float, float, float] = (-180.0, -90.0, 180.0, 90.0),
    derive: bool = True,
) -> dict[str, Any]:
    """Harvest ``start``…``end`` from ``source``, grid those days, and (``derive``) make a new emissions release."""
    harvest = harvest_granules(source, product, start, end, lake)
    cube = build_daily_cube(product, start, end, lake, resolution, bbox)
    result: dict[str, Any] = {"harvest": harvest, "grid": cube}
    if derive:
        result["emissions"] = derive_daily_emissions(lake, product, start, end, resolution, bbox)
    return result
