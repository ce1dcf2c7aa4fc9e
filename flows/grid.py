"""Flow: grid harvested granules into the daily cube, commit the days, publish their STAC items."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd
from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner

from catalog.datacube import cube_collection_id, cube_day_item_id
from flows.artifacts import report_grid, timed
from flows.progress import completed
from flows.windows import writer_lock
from infra.cubes import (
    cube_key,
    cube_spec,
    days_to_grid,
    extend_cube,
    grid_day,
    prepare_cube,
    quarantine_unreadable,
    quicklook_key,
    recover_cube,
    update_monthly,
)
from infra.ledger import commit_cube_days
from infra.publish import catalog_store, granule_collection_id, publish_cube, publish_intake
from infra.storage import open_lake
from transforms.grid import GridSpec
from transforms.gridding import Method, Weighting


@task(cache_policy=NO_CACHE)
def grid_day_task(
    lake_url: str, product: str, grid: GridSpec, day: dt.date, method: Method, weighting: Weighting
) -> dict[str, Any]:
    return grid_day(
        open_lake(lake_url),
        cube_spec(product, grid, method=method, weighting=weighting),
        day,
        method=method,
        weighting=weighting,
        grow=False,  # days beyond the axis stay unseen until the flow extends it once, after the last
    )


@flow(name="build_daily_cube", task_runner=ThreadPoolTaskRunner(max_workers=2))  # type: ignore[arg-type]
def build_daily_cube(
    product: str,
    start: dt.date,
    end: dt.date,
    lake: str,
    resolution: float,
    bbox: tuple[float, float, float, float],
    force: bool = False,
    method: Method = "centre",
    weighting: Weighting = "inverse_variance",
) -> dict[str, Any]:
    """Grid the days of ``start``…``end`` whose input granules changed (every day with ``force``); each
    gridded day replaces what the cube held for it. Days a crashed run left staged are finished first. A
    granule the reader cannot decode is left out of its days and quarantined (``quarantined`` in the
    summary), for the next harvest to fetch again."""
    the_lake = open_lake(lake)
    grid = GridSpec.snapped(resolution, bbox)
    spec = cube_spec(product, grid, method=method, weighting=weighting)
    with timed() as clock, writer_lock(product):  # one writer per product: cube days, ledger, catalog
        recovered = recover_cube(the_lake, spec)
        if recovered:
            commit_cube_days(the_lake, recovered)
        prepare_cube(the_lake, spec, first=start)
        days = days_to_grid(the_lake, spec, list(pd.date_range(start, end, freq="D").date), force=force)
        futures = [grid_day_task.submit(the_lake.url, product, grid, day, method, weighting) for day in days]
        rows = sorted(
            (f.result() for f in completed(futures, f"gridding {len(days)} days")), key=lambda r: r["day"]
        )
        unreadable = {gid: why for r in rows for gid, why in r.pop("unreadable").items()}
        quarantined = quarantine_unreadable(the_lake, unreadable)  # before the days that left them out commit
        if quarantined:  # their raw items point at bytes now in quarantine/ (a harvest publishes them again)
            catalog_store(the_lake).delete_items(granule_collection_id(product), [g for g, _ in quarantined])
        extend_cube(the_lake, spec, until=end)  # the run's new days appear at once, each one complete
        if rows:
            commit_cube_days(the_lake, rows)
        months = update_monthly(the_lake, spec, [r["day"] for r in [*recovered, *rows]])
        items = publish_cube(the_lake, spec)
        intake = publish_intake(the_lake)
    summary = {
        "cube": the_lake.url_of(cube_key(spec)),
        "grid": grid.grid_id,
        "unchanged": (end - start).days + 1 - len(rows),
        "recovered": [r["day"].isoformat() for r in recovered],
        "days": [
            {"day": r["day"].isoformat(), "granules": len(r["granules"]), "coverage": round(r["coverage"], 4)}
            for r in rows
        ],
        "quarantined": quarantined,  # (granule_id, reason): unreadable, left out, fetched again by a harvest
        "items": items,
        "months": [m.isoformat()[:7] for m in months],
        "intake": intake,
    }
    days_done = [r["day"] for r in rows]
    report_grid(
        summary,
        product=product,
        seconds=clock["seconds"],
        item_links=[
            the_lake.url_of("stac", cube_collection_id(spec), "items", f"{cube_day_item_id(spec, d)}.json")
            for d in days_done
        ],
        quicklooks=[the_lake.url_of(quicklook_key(spec, d)) for d in days_done],
    )
    return summary
