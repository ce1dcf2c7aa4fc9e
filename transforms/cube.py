"""Daily L3 cubes: one Zarr v3 store per product and grid, dims ``(time, lat, lon)``.

Layout: ``mean`` (product units), ``uncertainty`` (1σ of the mean, product units), ``count`` (pixels) and
``weight`` (sum of binning weights) on a daily time axis that starts at the product's mission start (so no day
ever has to be prepended) and grows forward. Days that were never gridded hold no chunks and read as NaN/0.
Writing a day replaces exactly that day's chunks (a region write), so re-gridding never adds a second copy.

The store is handed in (any Zarr v3 store: ``LocalStore``, ``FsspecStore`` on S3, ``MemoryStore``).
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr
import zarr
from zarr.abc.store import Store

from transforms.grid import GridSpec

TIME_UNITS_TEMPLATE = "days since {origin} 00:00:00"
DATA_VARS = ("mean", "uncertainty", "count", "weight")


@dataclass(frozen=True)
class CubeSpec:
    """What a cube holds: the product's variable metadata, the grid and the time origin."""

    product: str  # short name, e.g. "no2"
    grid: GridSpec
    origin: dt.date  # first day of the time axis (mission start)
    units: str  # units of mean and uncertainty, e.g. "mol m-2"
    standard_name: str  # CF standard name of the mean
    long_name: str
    title: str
    source: str  # e.g. "Sentinel-5P TROPOMI L2 NO2 (OFFL/RPRO), pixel-centre binning"
    chunk_lat: int = 1024
    chunk_lon: int = 1024

    @property
    def chunks(self) -> tuple[int, int, int]:
        n_lat, n_lon = self.grid.shape
        return (1, min(self.chunk_lat, n_lat), min(self.chunk_lon, n_lon))

    def day_index(self, day: dt.date) -> int:
        """Position of ``day`` on the time axis; raises ValueError before the origin."""
        i = (day - self.origin).days
        if i < 0:
            raise ValueError(f"{day} is before the start of the {self.product} record ({self.origin})")
        return i


def cube_attrs(spec: CubeSpec) -> dict[str, Any]:
    """CF-1.10 and ACDD-1.3 global attributes."""
    west, south, east, north = spec.grid.bounds
    return {
        "Conventions": "CF-1.10, ACDD-1.3",
        "title": spec.title,
        "summary": (
            f"Daily {spec.long_name} on a regular {spec.grid.resolution}° latitude/longitude grid, "
            "with per-cell pixel count and propagated uncertainty."
        ),
        "source": spec.source,
        "institution": "eolake",
        "product": spec.product,
        "grid_id": spec.grid.grid_id,
        "geospatial_lat_min": south,
        "geospatial_lat_max": north,
        "geospatial_lon_min": west,
        "geospatial_lon_max": east,
        "geospatial_lat_units": "degrees_north",
        "geospatial_lon_units": "degrees_east",
        "geospatial_lat_resolution": spec.grid.resolution,
        "geospatial_lon_resolution": spec.grid.resolution,
        "time_coverage_resolution": "P1D",
        "cdm_data_type": "Grid",
        "featureType": "grid",
        "keywords": "nitrogen dioxide, troposphere, TROPOMI, Sentinel-5P, L3",
    }


def variable_attrs(spec: CubeSpec) -> dict[str, dict[str, Any]]:
    """CF attributes of the data variables."""
    return {
        "mean": {
            "standard_name": spec.standard_name,
            "long_name": f"daily mean {spec.long_name}",
            "units": spec.units,
            "cell_methods": "time: mean area: mean",
            "ancillary_variables": "uncertainty count",
        },
        "uncertainty": {
            "standard_name": f"{spec.standard_name} standard_error",
            "long_name": f"propagated 1-sigma uncertainty of the daily mean {spec.long_name}",
            "units": spec.units,
        },
        "count": {
            "standard_name": f"{spec.standard_name} number_of_observations",
            "long_name": "number of valid pixels averaged into the cell",
            "units": "1",
        },
        "weight": {
            "long_name": "sum of binning weights (inverse variance: m4 mol-2)",
            "units": "1",
        },
    }


def _template(spec: CubeSpec, n_days: int) -> xr.Dataset:
    import dask.array as da

    n_lat, n_lon = spec.grid.shape
    shape = (n_days, n_lat, n_lon)
    chunks = spec.chunks
    var_attrs = variable_attrs(spec)
    data_vars = {}
    for name in DATA_VARS:
        dtype = np.int32 if name == "count" else np.float32
        fill = 0 if name == "count" else np.nan
        data_vars[name] = (
            ("time", "lat", "lon"),
            da.full(shape, fill, dtype=dtype, chunks=chunks),  # type: ignore[no-untyped-call]
            var_attrs[name],
        )
    time = np.array([np.datetime64(spec.origin, "D") + i for i in range(n_days)], dtype="datetime64[ns]")
    ds = xr.Dataset(
        data_vars,
        coords={
            "time": ("time", time, {"standard_name": "time", "long_name": "time", "axis": "T"}),
            "lat": (
                "lat",
                spec.grid.lat(),
                {"standard_name": "latitude", "units": "degrees_north", "axis": "Y"},
            ),
            "lon": (
                "lon",
                spec.grid.lon(),
                {"standard_name": "longitude", "units": "degrees_east", "axis": "X"},
            ),
        },
        attrs=cube_attrs(spec),
    )
    return ds


def _encoding(spec: CubeSpec) -> dict[str, dict[str, Any]]:
    enc: dict[str, dict[str, Any]] = {
        name: {"chunks": spec.chunks, "fill_value": 0 if name == "count" else np.nan} for name in DATA_VARS
    }
    enc["time"] = {
        "units": TIME_UNITS_TEMPLATE.format(origin=spec.origin.isoformat()),
        "calendar": "proleptic_gregorian",
        "dtype": "int32",
        "chunks": (4096,),
    }
    return enc


def _consolidate(store: Store) -> None:
    with warnings.catch_warnings():
        # Consolidated metadata is not in the Zarr v3 spec yet; readers that don't know it ignore it.
        warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
        zarr.consolidate_metadata(store)


def _to_zarr(ds: xr.Dataset, store: Store, **kwargs: Any) -> None:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
        ds.to_zarr(store, zarr_format=3, consolidated=False, **kwargs)


def ensure_cube(store: Store, spec: CubeSpec, *, until: dt.date) -> int:
    """Create the cube if absent and grow its time axis so it reaches ``until``. Returns the number of days.

    Growing resizes the arrays and rewrites the time coordinate only; no data chunk is written.
    """
    n_needed = spec.day_index(until) + 1
    try:
        group = zarr.open_group(store, mode="r+", zarr_format=3)
    except (FileNotFoundError, zarr.errors.GroupNotFoundError):
        _to_zarr(_template(spec, n_needed), store, mode="w", encoding=_encoding(spec), compute=False)
        _write_time(store, spec, n_needed)
        _consolidate(store)
        return n_needed
    existing_grid = group.attrs.get("grid_id")
    if existing_grid != spec.grid.grid_id:
        raise ValueError(f"the store holds a cube on grid {existing_grid!r}, not {spec.grid.grid_id!r}")
    time = group["time"]
    assert isinstance(time, zarr.Array)
    n_have = int(time.shape[0])
    if n_needed > n_have:
        for name in DATA_VARS:
            arr = group[name]
            assert isinstance(arr, zarr.Array)
            arr.resize((n_needed, *arr.shape[1:]))
        _write_time(store, spec, n_needed)
        _consolidate(store)
        return n_needed
    return n_have


def _write_time(store: Store, spec: CubeSpec, n_days: int) -> None:
    group = zarr.open_group(store, mode="r+", zarr_format=3)
    time = group["time"]
    assert isinstance(time, zarr.Array)
    if time.shape[0] != n_days:
        time.resize((n_days,))
    time[:] = np.arange(n_days, dtype=np.int32)


def write_day(
    store: Store, fields: xr.Dataset, *, day: dt.date, spec: CubeSpec, attrs: Mapping[str, Any] | None = None
) -> None:
    """Write one day's gridded ``fields`` (dims (lat, lon): mean, uncertainty, count, weight) into the cube,
    replacing whatever that day held. Creates or grows the cube as needed."""
    ensure_cube(store, spec, until=day)
    i = spec.day_index(day)
    n_lat, n_lon = spec.grid.shape
    if fields.sizes.get("lat") != n_lat or fields.sizes.get("lon") != n_lon:
        raise ValueError(
            f"fields have shape {dict(fields.sizes)}, cube grid {spec.grid.grid_id} needs {(n_lat, n_lon)}"
        )
    day_ds = xr.Dataset(
        {
            name: (
                ("time", "lat", "lon"),
                fields[name].values[None].astype(np.int32 if name == "count" else np.float32),
            )
            for name in DATA_VARS
        }
    )
    _to_zarr(day_ds, store, region={"time": slice(i, i + 1), "lat": slice(0, n_lat), "lon": slice(0, n_lon)})
    if attrs:
        group = zarr.open_group(store, mode="r+", zarr_format=3)
        group.attrs.update(dict(attrs))
        _consolidate(store)


def open_cube(store: Store, *, chunks: dict[str, int] | None = None) -> xr.Dataset:
    """Open a cube lazily (dask-backed). dims (time, lat, lon)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
        ds: xr.Dataset = xr.open_zarr(
            store, zarr_format=3, consolidated=True, chunks=chunks if chunks is not None else {}
        )
    return ds
