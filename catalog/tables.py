"""STAC for the emissions table: one collection, one item per immutable release (table extension)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import pystac
from pystac.extensions.table import TableExtension

TABLE_SCHEMA = TableExtension.get_schema_uri()
EMISSIONS_COLLECTION = "eolake-emissions-daily"
PARQUET_MEDIA_TYPE = "application/vnd.apache.parquet"


def create_emissions_collection(*, bbox: Sequence[float], start: dt.date, end: dt.date) -> pystac.Collection:
    collection = pystac.Collection(
        id=EMISSIONS_COLLECTION,
        title="Daily CO2 emissions by country and sector (Carbon-Monitor-style)",
        description=(
            "Daily fossil CO2 emissions per country (and the aggregates EU27 and WORLD) and Carbon Monitor sector, "
            "in MtCO2/day, derived from satellite NO2 cubes. Each release is immutable."
        ),
        extent=pystac.Extent(
            pystac.SpatialExtent([list(bbox)]),
            pystac.TemporalExtent(
                [[dt.datetime.combine(start, dt.time(), dt.UTC), dt.datetime.combine(end, dt.time(), dt.UTC)]]
            ),
        ),
        license="CC-BY-4.0",
        keywords=["CO2", "emissions", "Carbon Monitor", "daily"],
    )
    collection.stac_extensions = [TABLE_SCHEMA]
    return collection


def create_release_item(
    release: str,
    *,
    href: str,
    columns: Sequence[dict[str, Any]],
    row_count: int,
    bbox: Sequence[float],
    start: dt.date,
    end: dt.date,
    method_version: str,
    derived_from: Sequence[str] = (),
    diff: dict[str, Any] | None = None,
) -> pystac.Item:
    """An emissions release: a Parquet dataset (directory) at ``href``; ``columns`` as table:columns entries;
    ``diff``: the summary of its changes against the previous release (``eolake:diff``), if any."""
    w, s, e, n = bbox
    geometry = {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}
    item = pystac.Item(
        id=f"emissions-{release}",
        geometry=geometry,
        bbox=list(bbox),
        datetime=None,
        properties={
            "start_datetime": f"{start.isoformat()}T00:00:00Z",
            "end_datetime": f"{end.isoformat()}T23:59:59Z",
            "table:columns": list(columns),
            "table:row_count": int(row_count),
            "table:primary_geometry": None,
            "eolake:release": release,
            "eolake:method_version": method_version,
            **({"eolake:previous_release": diff.get("previous"), "eolake:diff": dict(diff)} if diff else {}),
        },
        stac_extensions=[TABLE_SCHEMA],
    )
    item.properties.pop("table:primary_geometry")
    item.add_asset(
        "data",
        pystac.Asset(
            href=href,
            media_type=PARQUET_MEDIA_TYPE,
            roles=["data"],
            title=f"Emissions release {release} (Parquet dataset)",
        ),
    )
    for h in derived_from:
        item.add_link(pystac.Link("derived_from", h, media_type="application/geo+json"))
    return item
