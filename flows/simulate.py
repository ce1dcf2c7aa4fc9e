"""Flow: write a simulated archive (granules of one product in its real format + static STAC catalog) from a
truth table."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd
from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner

from flows.progress import completed
from infra.archive import simulate_day, write_archive_catalog
from infra.scenario import load_truth
from transforms.truth import COLUMNS


@task(cache_policy=NO_CACHE)
def simulate_day_task(
    archive: str,
    day: dt.date,
    truth_rows: list[dict[str, Any]],
    bounds: tuple[float, float, float, float],
    seed: int,
    product: str = "no2",
) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = simulate_day(
        archive,
        day,
        pd.DataFrame(truth_rows, columns=list(COLUMNS)),
        bounds=bounds,
        seed=seed,
        product=product,
    )
    return items


# One day at a time: writing netCDF4/HDF5 files from several threads crashed once in the C libraries
# (malloc: unaligned tcache chunk); the simulator is not the pipeline's bottleneck.
@flow(name="simulate_archive", task_runner=ThreadPoolTaskRunner(max_workers=1))  # type: ignore[arg-type]
def simulate_archive(
    archive: str,
    start: dt.date,
    end: dt.date,
    bbox: tuple[float, float, float, float],
    truth: str | None = None,
    seed: int = 0,
    product: str = "no2",
) -> dict[str, Any]:
    """Simulate ``product``'s granules of ``start``…``end`` over ``bbox`` into ``archive`` (a local directory;
    products already there stay in its catalog)."""
    table = load_truth(truth, start=start, end=end, bounds=bbox)
    days = pd.date_range(start, end, freq="D").date
    futures = [
        simulate_day_task.submit(archive, day, _rows_of(table, day), bbox, seed, product) for day in days
    ]
    items = [item for f in completed(futures, "simulating days") for item in f.result()]
    items.sort(key=lambda i: i["id"])
    catalog = write_archive_catalog(archive, items)
    return {"catalog": catalog, "product": product, "granules": len(items), "days": len(days)}


def _rows_of(table: pd.DataFrame, day: dt.date) -> list[dict[str, Any]]:
    sel = table[pd.to_datetime(table["date"]).dt.date == day]
    rows: list[dict[str, Any]] = sel.to_dict("records")
    return rows
