"""Scheduled entry points: resolve the run's window of days, then call the core flows with explicit dates."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.emissions import derive_daily_emissions
from flows.grid import build_daily_cube
from flows.windows import resolve_window


@flow(name="grid_recent_days")
def grid_recent_days(
    lake: str,
    product: str = "no2",
    resolution: float = 0.1,
    bbox: tuple[float, float, float, float] = (-180.0, -90.0, 180.0, 90.0),
    days_back: int = 7,
) -> dict[str, Any]:
    """Grid the ``days_back`` days before the scheduled day (only days whose granules changed)."""
    start, end = resolve_window(None, None, days_back=days_back)
    result: dict[str, Any] = build_daily_cube(product, start, end, lake, resolution, bbox)
    return result


@flow(name="derive_recent_emissions")
def derive_recent_emissions(
    lake: str,
    product: str = "no2",
    resolution: float = 0.1,
    bbox: tuple[float, float, float, float] = (-180.0, -90.0, 180.0, 90.0),
    days_back: int = 90,
) -> dict[str, Any]:
    """Derive a release over the ``days_back`` days before the scheduled day (none if nothing changed)."""
    start, end = resolve_window(None, None, days_back=days_back)
    result: dict[str, Any] = derive_daily_emissions(lake, product, start, end, resolution, bbox)
    return result
