"""Daily cube writes: a day rewritten in place is never duplicated; the axis grows forward; empty days cost
no chunks; CF attributes are present."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr

from transforms.cube import DATA_VARS, CubeSpec, open_cube, write_day
from transforms.grid import GridSpec

GRID = GridSpec(0.5, (0.0, 40.0, 10.0, 50.0))
SPEC = CubeSpec(
    "no2",
    GRID,
    dt.date(2018, 4, 30),
    "mol m-2",
    "troposphere_mole_content_of_nitrogen_dioxide",
    "tropospheric NO2 column",
    "test cube",
    "unit test",
)


def _fields(v: float) -> xr.Dataset:
    count = np.full(GRID.shape, 2, dtype=np.int32)
    count[0, 0] = 0
    mean = np.full(GRID.shape, v, dtype=np.float32)
    mean[0, 0] = np.nan
    return xr.Dataset(
        {
            "mean": (("lat", "lon"), mean),
            "uncertainty": (("lat", "lon"), mean / 10),
            "count": (("lat", "lon"), count),
            "weight": (("lat", "lon"), count.astype(np.float32)),
        }
    )


def test_rewrite_in_place_and_growth(tmp_path: Path) -> None:
    store = zarr.storage.LocalStore(tmp_path / "c.zarr")
    write_day(store, _fields(1.0), day=dt.date(2020, 3, 3), spec=SPEC)
    write_day(store, _fields(2.0), day=dt.date(2020, 3, 5), spec=SPEC)
    write_day(store, _fields(3.0), day=dt.date(2020, 3, 3), spec=SPEC)  # re-grid: replaces the day
    ds = open_cube(store)
    assert ds.sizes["time"] == (dt.date(2020, 3, 5) - SPEC.origin).days + 1
    assert ds.indexes["time"].is_unique and ds.indexes["time"].is_monotonic_increasing
    sel = ds.sel(time=["2020-03-03", "2020-03-04", "2020-03-05"]).load()
    assert np.nanmax(sel["mean"].values[0]) == 3.0 and np.isnan(sel["mean"].values[0, 0, 0])
    assert np.isnan(sel["mean"].values[1]).all() and int(sel["count"].values[1].sum()) == 0
    assert np.nanmax(sel["mean"].values[2]) == 2.0
    # only the two written days have chunks
    chunks = sorted(p.name for p in (tmp_path / "c.zarr" / "mean" / "c").iterdir())
    assert len(chunks) == 2
    assert ds.attrs["Conventions"].startswith("CF-1.10")
    assert ds["mean"].attrs["standard_name"] == "troposphere_mole_content_of_nitrogen_dioxide"
    assert ds["lat"].attrs["units"] == "degrees_north" and ds["time"].attrs["axis"] == "T"
    assert set(DATA_VARS) <= set(ds.data_vars)


def test_back_filling_a_gap_touches_only_that_day(tmp_path: Path) -> None:
    store = zarr.storage.LocalStore(tmp_path / "c.zarr")
    write_day(store, _fields(1.0), day=dt.date(2020, 3, 10), spec=SPEC)
    write_day(store, _fields(5.0), day=dt.date(2020, 3, 1), spec=SPEC)
    ds = open_cube(store).sel(time=["2020-03-01", "2020-03-10"]).load()
    assert np.nanmax(ds["mean"].values[0]) == 5.0 and np.nanmax(ds["mean"].values[1]) == 1.0


def test_days_before_the_record_and_wrong_grids_are_refused(tmp_path: Path) -> None:
    store = zarr.storage.LocalStore(tmp_path / "c.zarr")
    with pytest.raises(ValueError, match="before the start"):
        write_day(store, _fields(1.0), day=dt.date(2018, 1, 1), spec=SPEC)
    write_day(store, _fields(1.0), day=dt.date(2020, 3, 1), spec=SPEC)
    other = CubeSpec(**{**SPEC.__dict__, "grid": GridSpec(1.0, (0.0, 40.0, 10.0, 50.0))})
    with pytest.raises(ValueError, match="grid"):
        write_day(store, _fields(1.0), day=dt.date(2020, 3, 1), spec=other)


@pytest.mark.parametrize(
    ("grid", "chunk"),
    [(GRID, 8), (GridSpec(1.0), 360), (GridSpec(1.0), 64), (GridSpec(0.5, (-10.0, 30.0, 30.0, 60.0)), 16)],
)
def test_encode_day_writes_the_bytes_zarr_writes(grid: GridSpec, chunk: int) -> None:
    """The direct zstd shard encoder gives exactly Zarr's own shard bytes: inner chunks in Morton order,
    all-fill chunks left out, the edge padded with fill, the index and its CRC32C at the end."""
    from transforms.cube import encode_day, encode_day_with_zarr

    spec = CubeSpec(**{**SPEC.__dict__, "grid": grid, "chunk_lat": chunk, "chunk_lon": chunk})
    rng = np.random.default_rng(chunk)
    shape = grid.shape
    seen = rng.random(shape) > 0.3
    seen[: shape[0] // 2, : shape[1] // 3] = False  # whole inner chunks of fill
    count = np.where(seen, rng.integers(1, 9, shape), 0).astype(np.int32)
    mean = np.where(seen, rng.normal(3e-5, 1e-5, shape), np.nan).astype(np.float32)
    fields = xr.Dataset(
        {
            "mean": (("lat", "lon"), mean),
            "uncertainty": (("lat", "lon"), np.abs(mean) / 10),
            "count": (("lat", "lon"), count),
            "weight": (("lat", "lon"), count.astype(np.float64)),  # cast to float32 by both
        }
    )
    assert encode_day(fields, spec) == encode_day_with_zarr(fields, spec)
    empty = fields.copy(deep=True)
    for name in ("mean", "uncertainty", "weight"):
        empty[name][:] = np.nan
    empty["count"][:] = 0
    assert encode_day(empty, spec) == encode_day_with_zarr(empty, spec) == dict.fromkeys(DATA_VARS)
