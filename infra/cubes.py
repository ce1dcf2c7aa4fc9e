"""Building the daily cubes in a lake: which granules feed a day, gridding it, writing it, committing it.

Commit order: the day's shards are written into the Zarr store by transforms/cube.py's protocol (a fresh day
in place behind an intent manifest, a re-gridded day staged then published; decision 0010), then the day is
recorded as committed in the ledger; readers and derivations trust only committed days, and a day with a
manifest left (a run crashed while writing it) is not committed until :func:`recover_cube` settles it
(finished, or rolled back and re-gridded by the same run).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import posixpath
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import pandas as pd

from infra.ledger import read_cube_days, read_granules, upsert_granules
from infra.storage import Lake, write_bytes_atomic, zarr_store
from infra.transfer import quarantine_key
from transforms.cube import (
    DATA_VARS,
    CubeSpec,
    ensure_cube,
    open_cube,
    recover_staged,
    set_cube_attrs,
    staged_days,
    write_day,
)
from transforms.errors import GranuleReadError
from transforms.grid import GridSpec
from transforms.gridding import Method, Weighting
from transforms.monthly import month_days, monthly_means, months_of
from transforms.observations import grid_granules  # every product family (S5P: transforms.l3)
from transforms.products import get_product
from transforms.quicklook import render_quicklook

MISSION_START = {"no2": dt.date(2018, 4, 30), "co": dt.date(2018, 4, 30), "ch4": dt.date(2018, 4, 30)}


def cube_spec(
    product: str, grid: GridSpec, *, method: Method = "centre", weighting: Weighting = "inverse_variance"
) -> CubeSpec:
    """The cube of ``product`` on ``grid`` (one cube per product and grid: the method is recorded in its
    ``source`` and per day in the ledger)."""
    how = {"centre": "pixel-centre binning", "footprint": "area-weighted footprint binning"}[method]
    weights = {"plain": "plain weights", "inverse_variance": "inverse-variance weights"}[weighting]
    p = get_product(product)
    mission = (
        "Sentinel-5P TROPOMI" if p.family == "s5p" else " ".join(dict.fromkeys([p.platform, p.instrument]))
    )
    variable = p.name.upper() if p.family == "s5p" else "XCO2"
    return CubeSpec(
        product=p.name,
        grid=grid,
        origin=MISSION_START.get(p.name, p.mission_start),
        units=p.units,
        standard_name=p.standard_name,
        long_name=p.long_name.lower(),
        title=f"{mission} {variable} daily L3, {grid.resolution}° ({grid.grid_id})",
        source=f"{mission} L2 {p.product_type} granules; {how}, {weights}",
    )


def _dataset(spec: CubeSpec) -> str:
    """The product's key prefix: ``s5p-no2``, ``oco2-xco2`` (:attr:`transforms.products.ProductSpec.dataset`)."""
    return get_product(spec.product).dataset


def cube_key(spec: CubeSpec) -> str:
    """``cubes/s5p-<product>/<grid_id>.zarr``."""
    return f"cubes/{_dataset(spec)}/{spec.grid.grid_id}.zarr"


def staging_key(spec: CubeSpec) -> str:
    """Where days are staged before they are published into the cube (beside it, not inside it)."""
    return f"cubes/{_dataset(spec)}/.staging/{spec.grid.grid_id}"


def monthly_spec(spec: CubeSpec) -> CubeSpec:
    """The monthly-mean cube derived from the daily cube ``spec`` (time = first day of each month)."""
    return dataclasses.replace(
        spec,
        step="P1M",
        origin=spec.origin.replace(day=1),
        title=spec.title.replace(" daily L3", " monthly L3"),
        source=f"{spec.source}; monthly means of the committed daily cells (weighted by their binning weights)",
    )


def monthly_key(spec: CubeSpec) -> str:
    """``cubes/s5p-<product>/monthly/<grid_id>.zarr`` (``spec``: the daily cube; a sub-folder, so the daily
    stores stay the only ``*.zarr`` beside each other)."""
    return f"cubes/{_dataset(spec)}/monthly/{spec.grid.grid_id}.zarr"


def update_monthly(lake: Lake, spec: CubeSpec, days: list[dt.date]) -> list[dt.date]:
    """Recompute the monthly means of exactly the months of ``days`` (the days a grid run changed) from the
    daily cube's committed days; a month left without committed days is emptied. Returns the months."""
    months = months_of(days)
    if not months:
        return []
    mspec = monthly_spec(spec)
    store = zarr_store(lake, monthly_key(spec))
    staging = zarr_store(lake, f"cubes/{_dataset(spec)}/.staging-monthly/{spec.grid.grid_id}")
    ensure_cube(store, mspec, until=months[-1])
    committed = set(pd.to_datetime(committed_days(lake, spec)["day"]).dt.date)
    daily = open_lake_cube(lake, spec)
    for month in months:
        first, last = month_days(month)
        sel = sorted(d for d in committed if first <= d <= last)
        picked = daily.isel(time=[spec.day_index(d) for d in sel])[list(DATA_VARS)]
        fields = monthly_means(picked).compute()
        write_day(
            store, fields, day=month, spec=mspec, staging=staging, record={"days": [str(d) for d in sel]}
        )
    return months


def quicklook_key(spec: CubeSpec, day: dt.date) -> str:
    """``quicklooks/s5p-<product>/<grid_id>/<YYYY-MM-DD>.png``: the day's PNG map, beside the cubes."""
    return f"quicklooks/{_dataset(spec)}/{spec.grid.grid_id}/{day.isoformat()}.png"


def quicklook_days(lake: Lake, spec: CubeSpec) -> set[dt.date]:
    """Days that have a quicklook (one listing, not one request per day)."""
    prefix = lake.path(posixpath.dirname(quicklook_key(spec, spec.origin)))
    if not lake.fs.exists(prefix):
        return set()
    names = (posixpath.basename(p) for p in lake.fs.ls(prefix, detail=False))
    return {dt.date.fromisoformat(n[:-4]) for n in names if n.endswith(".png")}


def cube_id(spec: CubeSpec) -> str:
    return f"{_dataset(spec)}/{spec.grid.grid_id}"


def granules_for_day(ledger: pd.DataFrame, product: str, day: dt.date) -> pd.DataFrame:
    """Harvested (not quarantined or superseded) granules of ``product`` whose span overlaps ``day``."""
    lo = pd.Timestamp(day, tz="UTC")
    hi = lo + pd.Timedelta(days=1)
    sel = (
        (ledger["product"] == product)
        & (ledger["status"] == "harvested")
        & (ledger["start"] < hi)
        & (ledger["end"] > lo)
    )
    return ledger[sel].sort_values("granule_id")


def prepare_cube(lake: Lake, spec: CubeSpec, *, first: dt.date) -> None:
    """Create the cube if absent, its time axis ending just before ``first`` (done once, before days are
    written in parallel), and record the binning method in its ``source`` attribute. An existing axis is left
    as it is: the run's days beyond it are *head days* (decision 0011), written unseen by
    ``grid_day(..., grow=False)`` and shown, each complete, by one :func:`extend_cube` after the last."""
    store = zarr_store(lake, cube_key(spec))
    ensure_cube(store, spec, until=first - dt.timedelta(days=1))
    set_cube_attrs(store, {"source": spec.source})


def extend_cube(lake: Lake, spec: CubeSpec, *, until: dt.date) -> None:
    """Grow the cube's time axis to ``until`` in one metadata write (the consolidated root): every head day
    written before appears at once and whole, to any consolidated reader, a plain ``xr.open_zarr`` included."""
    ensure_cube(zarr_store(lake, cube_key(spec)), spec, until=until)


def grid_day(
    lake: Lake,
    spec: CubeSpec,
    day: dt.date,
    *,
    method: Method = "centre",
    weighting: Weighting = "inverse_variance",
    grow: bool = True,
) -> dict[str, Any]:
    """Grid ``day`` from the ledger's granules and write it into the cube (:func:`transforms.cube.write_day`:
    beyond the axis, in place or staged, see decisions 0006/0010/0011). Returns the row that commits it (the
    caller records rows with :func:`infra.ledger.commit_cube_days`), with ``unreadable``:
    ``{granule_id: reason}`` of the granules the reader could not decode (the day is gridded without them; the
    caller quarantines them with :func:`quarantine_unreadable`). ``grow=False`` (writers in parallel): a day
    beyond the axis stays unseen until :func:`extend_cube`."""
    rows = granules_for_day(read_granules(lake), spec.product, day)
    product = get_product(spec.product)
    unreadable: dict[str, str] = {}
    while True:
        usable = rows[~rows["granule_id"].isin(unreadable)]
        reading: list[str] = []  # the granule being read
        try:
            with ExitStack() as stack:
                fields, stats = grid_granules(
                    _opened(lake, usable, stack, reading),
                    day=day,
                    grid=spec.grid,
                    product=product,
                    method=method,
                    weighting=weighting,
                )
            break
        except GranuleReadError as exc:
            if not reading or reading[-1] in unreadable:
                raise
            key = str(usable.loc[usable["granule_id"] == reading[-1], "key"].iloc[0])
            # the reason names the granule's file, not the lake's path to it
            why = str(exc).replace(lake.path(key), posixpath.basename(key))
            unreadable[reading[-1]] = f"{GRID_TIME_REASON}{why}"
    rows = usable
    row = {
        "cube": cube_id(spec),
        "day": day,
        "granules": list(rows["granule_id"]),
        "pixels": stats.pixels_used,
        "observed_cells": stats.observed_cells,
        "coverage": stats.coverage,
        "committed": dt.datetime.now(dt.UTC),
    }
    write_day(
        zarr_store(lake, cube_key(spec)),
        fields,
        day=day,
        spec=spec,
        staging=zarr_store(lake, staging_key(spec)),
        record=row,
        grow=grow,
    )
    write_quicklook(lake, spec, day, fields, coverage=stats.coverage)
    return {**row, "unreadable": unreadable}


GRID_TIME_REASON = "unreadable at grid time: "
"""How the ledger's reason of a granule quarantined by gridding starts."""


def _opened(lake: Lake, rows: pd.DataFrame, stack: ExitStack, reading: list[str]) -> Iterator[Any]:
    """The granules of ``rows`` opened one at a time as gridding asks for them (closed by ``stack``); the id
    of the one being read is appended to ``reading``."""
    for gid, key in zip(rows["granule_id"], rows["key"], strict=True):
        reading.append(gid)
        yield stack.enter_context(lake.fs.open(lake.path(key), "rb"))


def quarantine_unreadable(lake: Lake, unreadable: dict[str, str]) -> list[tuple[str, str]]:
    """Quarantine granules gridding could not decode (``{granule_id: reason}``), as a harvest quarantines
    them: their bytes go from ``raw/`` to ``quarantine/<file>`` and their ledger rows become ``quarantined``
    with the reason, so the next harvest fetches them again within the retry budget
    (:data:`infra.harvest.RETRY_BUDGET`). Order: copy, ledger, delete — a crash leaves the bytes reachable.
    Call under the product's writer lock. Returns ``(granule_id, reason)`` pairs."""
    if not unreadable:
        return []
    ledger = read_granules(lake)
    found = ledger[ledger["granule_id"].isin(unreadable) & (ledger["status"] == "harvested")]
    rows = []
    for row in found.to_dict("records"):
        raw, qkey = row["key"], quarantine_key(row["key"])
        if lake.fs.exists(lake.path(raw)):
            if lake.protocol == "file":
                lake.fs.makedirs(posixpath.dirname(lake.path(qkey)), exist_ok=True)
            lake.fs.copy(lake.path(raw), lake.path(qkey))
        rows.append(
            {
                **row,
                "key": qkey,
                "status": "quarantined",
                "reason": unreadable[row["granule_id"]],
                "updated": dt.datetime.now(dt.UTC),
            }
        )
    upsert_granules(lake, rows)
    for row in rows:
        raw = lake.path(str(found.loc[found["granule_id"] == row["granule_id"], "key"].iloc[0]))
        if lake.fs.exists(raw):
            lake.fs.rm(raw)
    return [(r["granule_id"], r["reason"]) for r in rows]


def write_quicklook(lake: Lake, spec: CubeSpec, day: dt.date, fields: Any, *, coverage: float) -> str:
    """Render the day's mean (``fields``: dims (lat, lon)) as a PNG at :func:`quicklook_key`; returns the key."""
    png = render_quicklook(
        fields["mean"],
        grid=spec.grid,
        title=f"S5P TROPOMI {spec.product.upper()} {spec.long_name}"
        if get_product(spec.product).family == "s5p"
        else f"{spec.title.split(' daily L3')[0]} {spec.long_name}",
        units=spec.units,
        day=day,
        coverage=coverage,
    )
    key = quicklook_key(spec, day)
    write_bytes_atomic(lake, key, png)
    return key


def recover_cube(lake: Lake, spec: CubeSpec) -> list[dict[str, Any]]:
    """Settle the days a crashed run left with a manifest (staged days are published, fresh days written in
    place are kept when complete, else rolled back to be re-gridded); returns the commit rows of the days
    now complete."""
    records = recover_staged(zarr_store(lake, cube_key(spec)), zarr_store(lake, staging_key(spec)), spec)
    rows = [_row_from_record(r) for r in records]
    if rows:  # their quicklooks (the crashed run wrote none, or one of the previous version)
        cube = open_lake_cube(lake, spec)
        for row in rows:
            fields = cube.isel(time=spec.day_index(row["day"]))[["mean"]].load()
            write_quicklook(lake, spec, row["day"], fields, coverage=float(row["coverage"]))
    return rows


def _row_from_record(record: dict[str, Any]) -> dict[str, Any]:
    return {
        **record,
        "day": dt.date.fromisoformat(str(record["day"])[:10]),
        "committed": pd.Timestamp(record["committed"]).to_pydatetime(),
        "granules": list(record["granules"]),
    }


def pending_days(lake: Lake, spec: CubeSpec) -> list[dt.date]:
    """Days with a manifest left by a crashed run: staged and not yet published, or being written in place
    (not committed, whatever the ledger says)."""
    if not lake.fs.exists(lake.path(staging_key(spec))):
        return []
    return staged_days(zarr_store(lake, staging_key(spec), read_only=True))


def days_to_grid(lake: Lake, spec: CubeSpec, days: list[dt.date], *, force: bool = False) -> list[dt.date]:
    """The days whose input granules differ from what their committed version was made from (all when
    ``force``). Re-running the grid over unchanged inputs therefore does nothing."""
    if force:
        return list(days)
    ledger = read_granules(lake)
    done = {
        pd.Timestamp(r.day).date(): sorted(r.granules)
        for r in committed_days(lake, spec).itertuples(index=False)
    }
    return [d for d in days if done.get(d) != sorted(granules_for_day(ledger, spec.product, d)["granule_id"])]


def committed_days(lake: Lake, spec: CubeSpec) -> pd.DataFrame:
    """The cube's committed days (ledger rows), less any day a crashed run left half-published."""
    days = read_cube_days(lake)
    days = days[days["cube"] == cube_id(spec)]
    pending = pending_days(lake, spec)
    if pending:
        days = days[~pd.to_datetime(days["day"]).dt.date.isin(pending)]
    return days.sort_values("day", ignore_index=True)


def open_lake_cube(lake: Lake, spec: CubeSpec) -> Any:
    """The cube, lazily (dask-backed)."""
    return open_cube(zarr_store(lake, cube_key(spec), read_only=True))
