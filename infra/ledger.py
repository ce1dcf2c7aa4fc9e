"""The lake's ledger: one row per granule version, and one row per committed cube day.

Stored as small Parquet tables under ``<lake>/ledger/``, rewritten atomically on every change, so a reader
always sees a whole table. Statuses of a granule: ``harvested`` (bytes in raw/, checksum verified, opened
cleanly), ``quarantined`` (kept out of cubes; ``reason`` says why), ``superseded`` (a better version of the
same acquisition was harvested).
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from infra.storage import Lake, write_bytes_atomic

GRANULES_KEY = "ledger/granules.parquet"
CUBE_DAYS_KEY = "ledger/cube_days.parquet"

GRANULE_SCHEMA = pa.schema(
    [
        ("granule_id", pa.string()),
        ("product", pa.string()),
        ("mode", pa.string()),
        ("processor_version", pa.string()),
        ("orbit", pa.int64()),
        ("acquisition", pa.string()),
        ("start", pa.timestamp("us", tz="UTC")),
        ("end", pa.timestamp("us", tz="UTC")),
        ("key", pa.string()),
        ("size", pa.int64()),
        ("sha256", pa.string()),
        ("status", pa.string()),
        ("reason", pa.string()),
        ("source", pa.string()),
        ("source_href", pa.string()),
        ("attempts", pa.int64()),
        ("updated", pa.timestamp("us", tz="UTC")),
    ]
)

CUBE_DAY_SCHEMA = pa.schema(
    [
        ("cube", pa.string()),
        ("day", pa.date32()),
        ("granules", pa.list_(pa.string())),
        ("pixels", pa.int64()),
        ("observed_cells", pa.int64()),
        ("coverage", pa.float64()),
        ("committed", pa.timestamp("us", tz="UTC")),
    ]
)


def _read(lake: Lake, key: str, schema: pa.Schema) -> pd.DataFrame:
    path = lake.path(key)
    if not lake.fs.exists(path):
        return schema.empty_table().to_pandas()
    with lake.fs.open(path, "rb") as f:
        return pq.read_table(f, schema=schema).to_pandas()


def _write(lake: Lake, key: str, df: pd.DataFrame, schema: pa.Schema) -> None:
    table = pa.Table.from_pandas(df[schema.names], schema=schema, preserve_index=False)
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    write_bytes_atomic(lake, key, buf.getvalue())


def read_granules(lake: Lake) -> pd.DataFrame:
    """The granule ledger, one row per granule version."""
    return _read(lake, GRANULES_KEY, GRANULE_SCHEMA)


def upsert_granules(lake: Lake, rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Insert or replace rows by ``granule_id``; returns the new ledger."""
    new = pd.DataFrame(list(rows))
    if new.empty:
        return read_granules(lake)
    for col in GRANULE_SCHEMA.names:
        if col not in new:
            new[col] = None
    old = read_granules(lake)
    merged = pd.concat(
        [old[~old["granule_id"].isin(new["granule_id"])], new[GRANULE_SCHEMA.names]], ignore_index=True
    )
    merged = merged.sort_values(["product", "start", "granule_id"], ignore_index=True)
    _write(lake, GRANULES_KEY, merged, GRANULE_SCHEMA)
    return merged


def read_cube_days(lake: Lake) -> pd.DataFrame:
    """Committed cube days, one row per (cube, day)."""
    return _read(lake, CUBE_DAYS_KEY, CUBE_DAY_SCHEMA)


def commit_cube_days(lake: Lake, rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Record days as committed (after their data is written); replaces earlier rows of the same cube day."""
    new = pd.DataFrame(list(rows))
    if new.empty:
        return read_cube_days(lake)
    old = read_cube_days(lake)
    key_old = old["cube"].astype(str) + "/" + old["day"].astype(str)
    key_new = new["cube"].astype(str) + "/" + new["day"].astype(str)
    merged = pd.concat([old[~key_old.isin(key_new)], new[CUBE_DAY_SCHEMA.names]], ignore_index=True)
    merged = merged.sort_values(["cube", "day"], ignore_index=True)
    _write(lake, CUBE_DAYS_KEY, merged, CUBE_DAY_SCHEMA)
    return merged


MARKS_KEY = "ledger/marks.parquet"
MARK_SCHEMA = pa.schema(
    [
        ("source", pa.string()),
        ("product", pa.string()),
        ("mark", pa.timestamp("us", tz="UTC")),  # the sensing-time end of the last successful run's search
        ("run_at", pa.timestamp("us", tz="UTC")),  # when that run finished
    ]
)
"""High-water marks of incremental harvests: one row per (source, product). A failed run leaves its row alone."""


def read_marks(lake: Lake) -> pd.DataFrame:
    """Incremental harvests' high-water marks, one row per (source, product)."""
    return _read(lake, MARKS_KEY, MARK_SCHEMA)


def last_mark(lake: Lake, source: str, product: str) -> pd.Timestamp | None:
    """The sensing-time high-water mark of the last successful incremental run, or None before the first."""
    marks = read_marks(lake)
    row = marks[(marks["source"] == source) & (marks["product"] == product)]
    return None if row.empty else pd.Timestamp(row["mark"].iloc[0])


def record_mark(lake: Lake, source: str, product: str, mark: Any, run_at: Any) -> pd.DataFrame:
    """Set (source, product)'s high-water mark (never moves it backwards); returns all marks."""
    marks = read_marks(lake)
    mask = (marks["source"] == source) & (marks["product"] == product)
    old = marks.loc[mask, "mark"]
    mark = pd.Timestamp(mark) if old.empty else max(pd.Timestamp(mark), pd.Timestamp(old.iloc[0]))
    row = pd.DataFrame([{"source": source, "product": product, "mark": mark, "run_at": pd.Timestamp(run_at)}])
    merged = pd.concat([marks[~mask], row], ignore_index=True).sort_values(
        ["source", "product"], ignore_index=True
    )
    _write(lake, MARKS_KEY, merged, MARK_SCHEMA)
    return merged
