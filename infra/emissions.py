"""Deriving and storing emissions releases: committed cube days in, an immutable Parquet release out.

``<lake>/tables/emissions/release=<id>/part-0.parquet``. A release is never rewritten; re-deriving from the same
committed inputs with the same method returns the existing release instead of adding a duplicate.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import posixpath
from typing import Any

import dask
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from catalog.tables import create_emissions_collection, create_release_item
from infra.compute import dask_client
from infra.cubes import committed_days, cube_spec, open_lake_cube
from infra.publish import STAC_ROOT, catalog_store
from infra.storage import Lake, write_bytes_atomic
from transforms.comparison import diff_tables
from transforms.emissions import METHOD_VERSION, derive_emissions
from transforms.errors import InputError, LakeError
from transforms.grid import GridSpec
from transforms.truth import load_base_inventory, write_carbon_monitor_csv

TABLE_ROOT = "tables/emissions"
#: Per release, the rows that differ from the previous release ("_" keeps it out of the dataset's files).
DIFF_FILE = "_diff.parquet"


def release_key(release: str) -> str:
    return posixpath.join(TABLE_ROOT, f"release={release}")


def list_releases(lake: Lake) -> list[str]:
    root = lake.path(TABLE_ROOT)
    if not lake.fs.exists(root):
        return []
    out = []
    for p in lake.fs.ls(root, detail=False):
        base = posixpath.basename(p.rstrip("/"))
        if base.startswith("release=") and lake.fs.exists(posixpath.join(p, "part-0.parquet")):
            out.append(base.removeprefix("release="))
    return sorted(out)


def read_release(lake: Lake, release: str) -> pd.DataFrame:
    with lake.fs.open(lake.path(release_key(release), "part-0.parquet"), "rb") as f:
        return pq.read_table(f).to_pandas()


def _fingerprint(days: pd.DataFrame, start: dt.date, end: dt.date, grid: GridSpec) -> str:
    """Identifies the inputs of a derivation: the committed days used, the grid, the period and the method."""
    payload = {
        "method": METHOD_VERSION,
        "grid": grid.grid_id,
        "period": [start.isoformat(), end.isoformat()],
        "days": [[str(r.day), sorted(r.granules)] for r in days.itertuples(index=False)],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def derive_release(
    lake: Lake, *, product: str, grid: GridSpec, start: dt.date, end: dt.date
) -> dict[str, Any]:
    """Derive the table for ``start``…``end`` from the committed cube days on dask and store it as a new
    release with its diff against the previous release (or return the existing release made from the same
    inputs). Days of the period the cube lacks (never gridded, uncommitted) are gap-filled and flagged;
    a period without any committed day is an error."""
    spec = cube_spec(product, grid)
    days = committed_in_period(lake, product=product, grid=grid, start=start, end=end)
    fingerprint = _fingerprint(days, start, end, grid)
    for release in reversed(list_releases(lake)):
        meta = _release_meta(lake, release)
        if meta.get("fingerprint") == fingerprint:
            return {
                "release": release,
                "rows": meta.get("rows"),
                "created": False,
                "key": release_key(release),
                "diff": meta.get("diff"),
            }

    committed = set(pd.to_datetime(days["day"]).dt.date)
    period = pd.date_range(start, end, freq="D")
    cube = open_lake_cube(lake, spec).sel(time=slice(str(start), str(end)))
    cube = cube.reindex(time=period)  # days beyond the cube's time axis read as unobserved
    is_committed = pd.Index(period.date).isin(list(committed))
    cube = cube.where(cube["time"].copy(data=is_committed))  # uncommitted days read as unobserved
    release = _new_release_id(lake)
    with dask_client() as client, dask.config.set(scheduler=client.get):
        table = derive_emissions(cube, grid, inventory=load_base_inventory(), release=release)
    table = table.sort_values(["country", "date", "sector"], ignore_index=True)
    previous = list_releases(lake)
    diff_rows, diff = (None, None)
    if previous:
        diff_rows, diff = diff_tables(read_release(lake, previous[-1]), table)
        diff = {"previous": previous[-1], **diff}
    meta = {
        "release": release,
        "fingerprint": fingerprint,
        "method_version": METHOD_VERSION,
        "cube": spec.grid.grid_id,
        "product": product,
        "period": [start.isoformat(), end.isoformat()],
        "committed_days": len(days),
        "rows": len(table),
        "previous": previous[-1] if previous else None,
        "diff": diff,
    }
    buf = io.BytesIO()
    arrow = _release_as_partition_type(pa.Table.from_pandas(table, preserve_index=False))
    arrow = arrow.replace_schema_metadata(
        {**(arrow.schema.metadata or {}), b"eolake": json.dumps(meta).encode()}
    )
    pq.write_table(arrow, buf, compression="zstd")
    # data first (the table, then its diff), then the release's metadata file, then its catalog item
    write_bytes_atomic(lake, posixpath.join(release_key(release), "part-0.parquet"), buf.getvalue())
    if diff_rows is not None:
        dbuf = io.BytesIO()
        diff_rows.to_parquet(dbuf, index=False, compression="zstd")
        write_bytes_atomic(lake, posixpath.join(release_key(release), DIFF_FILE), dbuf.getvalue())
    write_bytes_atomic(
        lake, posixpath.join(release_key(release), "_release.json"), json.dumps(meta, indent=1).encode()
    )
    _publish(lake, release, table, grid, start, end, diff)
    return {
        "release": release,
        "rows": len(table),
        "created": True,
        "key": release_key(release),
        "diff": diff,
    }


def committed_in_period(
    lake: Lake, *, product: str, grid: GridSpec, start: dt.date, end: dt.date
) -> pd.DataFrame:
    """The cube's committed days within ``start``…``end``; InputError (saying what to run) if there are none."""
    days = committed_days(lake, cube_spec(product, grid))
    day = pd.to_datetime(days["day"]).dt.date
    days = days[(day >= start) & (day <= end)]
    if days.empty:
        raise InputError(
            f"no committed {product} cube days on grid {grid.grid_id} between {start} and {end}; "
            "run `eolake grid` for that period, resolution and bbox first"
        )
    return days


def _new_release_id(lake: Lake) -> str:
    """A UTC timestamp id (sortable); a suffix keeps two releases made within one second apart."""
    base = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    taken = set(list_releases(lake))
    release, n = base, 1
    while release in taken or lake.fs.exists(lake.path(release_key(release))):
        n += 1
        release = f"{base}-{n}"
    return release


def latest_release(lake: Lake) -> str:
    """The newest release's id; LakeError if the lake has none."""
    releases = list_releases(lake)
    if not releases:
        raise LakeError(
            f"no emissions release under {lake.url_of(TABLE_ROOT)}; run `eolake emissions derive` (or the demo) first"
        )
    return releases[-1]


def read_release_checked(lake: Lake, release: str | None) -> pd.DataFrame:
    """The table of ``release`` (default: the newest); LakeError naming the releases if it does not exist."""
    if release is None:
        release = latest_release(lake)
    elif release not in list_releases(lake):
        known = ", ".join(list_releases(lake)[-5:]) or "none"
        raise LakeError(f"no emissions release {release!r} in {lake.url}; recent releases: {known}")
    return read_release(lake, release)


def read_diff(lake: Lake, release: str) -> tuple[pd.DataFrame | None, dict[str, Any] | None]:
    """The rows by which ``release`` differs from its predecessor and the summary (None for the first)."""
    meta = _release_meta(lake, release)
    path = lake.path(release_key(release), DIFF_FILE)
    if not meta.get("diff") or not lake.fs.exists(path):
        return None, meta.get("diff")
    with lake.fs.open(path, "rb") as f:
        return pq.read_table(f).to_pandas(), meta["diff"]


def export_carbon_monitor(
    lake: Lake, release: str | None, target: Any, *, start: dt.date | None = None, end: dt.date | None = None
) -> int:
    """Write a release (default: the newest) as Carbon Monitor's CSV (country,date,sector,value; DD/MM/YYYY;
    aggregates included under their codes) to a path or text file; returns the number of rows."""
    table = read_release_checked(lake, release)
    dates = pd.to_datetime(table["date"]).dt.date
    keep = pd.Series(True, index=table.index)
    if start is not None:
        keep &= dates >= start
    if end is not None:
        keep &= dates <= end
    rows = table[keep]
    if rows.empty:
        raise InputError(f"the release has no rows between {start} and {end}")
    write_carbon_monitor_csv(rows.sort_values(["is_aggregate", "country", "date", "sector"]), target)
    return len(rows)


def _release_as_partition_type(table: pa.Table) -> pa.Table:
    """Store ``release`` as dictionary<int32, string>: the type readers infer for the hive key ``release=``,
    so one release and the whole ``tables/emissions/`` directory both read without a type conflict."""
    i = table.schema.get_field_index("release")
    kind = pa.dictionary(pa.int32(), pa.string())
    column = table.column(i).cast(pa.string()).dictionary_encode().cast(kind)
    return table.set_column(i, pa.field("release", kind), column)


def _release_meta(lake: Lake, release: str) -> dict[str, Any]:
    path = lake.path(release_key(release), "_release.json")
    if not lake.fs.exists(path):
        return {}
    doc: dict[str, Any] = json.loads(lake.fs.cat_file(path))
    return doc


_COLUMN_DOCS = {
    "country": "country or aggregate name (Carbon Monitor spelling)",
    "iso3": "ISO 3166-1 alpha-3 code, or EU27/WORLD for aggregates",
    "date": "UTC day",
    "sector": "Carbon Monitor sector",
    "value": "emissions, MtCO2/day",
    "uncertainty": "1-sigma uncertainty, MtCO2/day",
    "coverage": "share of the country's proxy weight observed that day (0-1)",
    "gap_filled": "true when the day was filled from neighbouring days",
    "is_aggregate": "true for EU27/ROW/WORLD rows, which must not be summed with members",
    "source": "where the value comes from: no2_activity, profile, default_share_profile, inventory_profile, "
    "aggregate",
    "method_version": "version of the derivation method",
    "release": "release id",
}


def _publish(
    lake: Lake,
    release: str,
    table: pd.DataFrame,
    grid: GridSpec,
    start: dt.date,
    end: dt.date,
    diff: dict[str, Any] | None,
) -> None:
    west, south, east, north = grid.bounds
    bbox = [west, south, min(east, 180.0), north]
    columns = [
        {"name": c, "type": str(table[c].dtype), "description": _COLUMN_DOCS.get(c, c)} for c in table.columns
    ]
    href = posixpath.join("..", "..", "..", release_key(release))
    cube_collection = f"s5p-no2-l3-daily-{grid.grid_id}"
    item = create_release_item(
        release,
        href=href,
        columns=columns,
        row_count=len(table),
        bbox=bbox,
        start=start,
        end=end,
        method_version=METHOD_VERSION,
        derived_from=[posixpath.join("..", "..", cube_collection, "collection.json")],
        diff=diff,
    )
    collection = create_emissions_collection(bbox=bbox, start=start, end=end)
    catalog_store(lake).upsert(collection, [item])


__all__ = [
    "STAC_ROOT",
    "derive_release",
    "export_carbon_monitor",
    "latest_release",
    "list_releases",
    "read_diff",
    "read_release",
    "read_release_checked",
]
