"""Flow: derive a daily emissions release from the committed cube days, on dask."""

from __future__ import annotations

import datetime as dt
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from catalog.tables import EMISSIONS_COLLECTION
from flows.artifacts import release_summary, report_release, timed
from flows.windows import writer_lock
from infra.emissions import derive_release, read_release
from infra.publish import publish_intake
from infra.storage import open_lake
from transforms.grid import GridSpec


@task(cache_policy=NO_CACHE)
def derive_task(lake_url: str, product: str, grid: GridSpec, start: dt.date, end: dt.date) -> dict[str, Any]:
    return derive_release(open_lake(lake_url), product=product, grid=grid, start=start, end=end)


@flow(name="derive_daily_emissions")
def derive_daily_emissions(
    lake: str,
    product: str,
    start: dt.date,
    end: dt.date,
    resolution: float,
    bbox: tuple[float, float, float, float],
) -> dict[str, Any]:
    """A new release of the emissions table (or the existing one when the inputs did not change)."""
    grid = GridSpec.snapped(resolution, bbox)
    the_lake = open_lake(lake)
    with timed() as clock, writer_lock(product):  # the release, its catalog item, catalog.yaml
        result = derive_task(the_lake.url, product, grid, start, end)
        result["intake"] = publish_intake(the_lake)
    item = the_lake.url_of("stac", EMISSIONS_COLLECTION, "items", f"emissions-{result['release']}.json")
    summary = release_summary(read_release(the_lake, result["release"]))
    report_release(
        summary,
        release=result["release"],
        created=result["created"],
        seconds=clock["seconds"],
        item_link=item,
    )
    return result
