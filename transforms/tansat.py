"""TanSat ACGS XCO2 lite daily files (flat netCDF4, CASA / IAP-CAS), both directions.

Layout (flat variables on dimension ``sounding_id``; the formats note marks it unverified, and so is
everything here beyond the variable names it lists): ``sounding_id`` (int64), ``latitude``, ``longitude``
(degrees), ``time`` (seconds since 1970-01-01), ``xco2``, ``xco2_uncertainty`` (ppm), ``xco2_quality_flag``
(int8, 0 good: assumed from the OCO heritage of the TanSat lite format), missing value −999999. No footprint
vertices: corners are 2 km squares (ACGS's nominal 2 × 2 km footprint).
"""

from __future__ import annotations

import os
from typing import IO, Any

import h5netcdf
import h5py
import numpy as np
import numpy.typing as npt
import xarray as xr

from transforms.errors import GranuleReadError, InputError
from transforms.granules import GranuleName
from transforms.products import ProductSpec
from transforms.soundings import (
    EPOCH_1970,
    LITE_MISSING,
    Source,
    attr_text,
    granule_stem,
    observations,
    read_float,
    read_quality_flag,
    read_seconds_since_1970,
    read_sounding_file,
    read_sounding_id,
    sounding_ids,
    square_corners,
    variable,
)

TITLE = "TanSat ACGS L2 XCO2 lite"


def write_tansat_lite(
    target: str | os.PathLike[str] | IO[bytes],
    *,
    name: GranuleName,
    time: npt.ArrayLike,
    latitude: npt.ArrayLike,
    longitude: npt.ArrayLike,
    xco2: npt.ArrayLike,
    xco2_uncertainty: npt.ArrayLike,
    xco2_quality_flag: npt.ArrayLike,
) -> None:
    """Write a TanSat XCO2 lite file. Arrays (sounding,): time (datetime64, UTC), latitude/longitude
    (degrees), xco2/xco2_uncertainty (ppm, NaN = missing), xco2_quality_flag (0 good)."""
    if name.family != "tansat_lite":
        raise InputError(f"write_tansat_lite writes TanSat lite files, not {name.product} ({name.filename})")
    lat = np.asarray(latitude, dtype=np.float32)
    n = lat.shape[0] if lat.ndim == 1 else -1
    times = np.asarray(time, dtype="datetime64[ns]")
    floats = {
        "longitude": np.asarray(longitude, dtype=np.float32),
        "xco2": np.asarray(xco2, dtype=np.float32),
        "xco2_uncertainty": np.asarray(xco2_uncertainty, dtype=np.float32),
    }
    flag = np.asarray(xco2_quality_flag, dtype=np.int8)
    if n < 0 or any(a.shape != (n,) for a in (*floats.values(), times, flag)):
        raise InputError("every TanSat array must be 1-D (sounding,) of one length")
    fill = np.float32(LITE_MISSING)
    seconds = (times - EPOCH_1970).astype("timedelta64[ns]").astype(np.float64) / 1e9

    def put(f: Any, var: str, data: Any, attrs: dict[str, Any]) -> None:
        kwargs: dict[str, Any] = {"compression": "gzip"} if n else {}
        if data.dtype == np.float32:
            data = np.where(np.isfinite(data), data, fill).astype(np.float32)
            kwargs["fillvalue"] = fill
            attrs = {**attrs, "missing_value": fill}
        v = f.create_variable(var, ("sounding_id",), data.dtype, data=data, **kwargs)
        for key, val in attrs.items():
            v.attrs[key] = np.bytes_(val) if isinstance(val, str) else val

    with h5netcdf.File(target, "w") as f:
        for key, val in (
            ("title", TITLE),
            ("institution", "Institute of Atmospheric Physics, Chinese Academy of Sciences"),
            ("platform", "TanSat"),
            ("sensor", "ACGS"),
            ("observation_mode", {"ND": "nadir", "GL": "glint"}.get(name.mode, name.mode)),
        ):
            f.attrs[key] = np.bytes_(val)
        f.dimensions = {"sounding_id": n}
        put(f, "sounding_id", sounding_ids(times, np.ones(n, dtype=np.int8)), {"long_name": "sounding id"})
        put(f, "time", seconds, {"units": "seconds since 1970-01-01 00:00:00", "standard_name": "time"})
        put(f, "latitude", lat, {"units": "degrees_north", "standard_name": "latitude"})
        put(f, "longitude", floats["longitude"], {"units": "degrees_east", "standard_name": "longitude"})
        put(f, "xco2", floats["xco2"], {"units": "ppm", "long_name": "XCO2 (bias corrected)"})
        put(
            f,
            "xco2_uncertainty",
            floats["xco2_uncertainty"],
            {"units": "ppm", "long_name": "XCO2 uncertainty"},
        )
        put(f, "xco2_quality_flag", flag, {"long_name": "XCO2 quality flag", "comment": "0=Good, 1=Bad"})


def open_tansat_observations(
    source: Source, *, product: str | ProductSpec, corners: bool = True
) -> xr.Dataset:
    """Read a TanSat XCO2 lite file into the standard observations Dataset (dim ``pixel`` = sounding):
    ``value`` xco2 (ppm), ``uncertainty`` xco2_uncertainty, ``qa`` 1 where ``xco2_quality_flag == 0``.
    Raises :class:`GranuleReadError` for empty, truncated, corrupt or non-TanSat files."""
    return read_sounding_file(source, product, lambda f, spec, label: _read(f, spec, label, corners=corners))


def _read(f: h5py.File, spec: ProductSpec, label: str, *, corners: bool) -> xr.Dataset:
    title = attr_text(f.attrs.get("title", ""))
    if title and title != TITLE:
        raise GranuleReadError(f"product mismatch: granule {label} is {title!r}, not a TanSat XCO2 lite file")
    lat = read_float(variable(f, "latitude", label))
    lon = read_float(variable(f, "longitude", label))
    time = read_seconds_since_1970(variable(f, "time", label))
    return observations(
        spec=spec,
        granule_id=granule_stem(label),
        value=read_float(variable(f, spec.value_var, label)),
        uncertainty=read_float(variable(f, spec.precision_var, label)),
        flag=read_quality_flag(f, spec, label),
        latitude=lat,
        longitude=lon,
        time=time,
        sounding_id=read_sounding_id(f, label),
        bounds=square_corners(lat, lon, spec.footprint_km) if corners and spec.footprint_km else None,
        value_source=f"/{spec.value_var}",
    )
