"""Sentinel-5P TROPOMI L2 netCDF4 files, both directions.

:func:`open_observations` is the reader: a granule (path or binary file object, e.g. from fsspec) in, a
flat observations Dataset out (dim ``pixel`` = scanline × ground_pixel). It reads only the variables it
needs, never the ``layer``-dimension ones. :func:`write_s5p_l2` writes a granule with the structure of the
real files (groups, dimensions, attributes, encodings), for the simulator and for tests.

Layout of a real file (processor 1.x–2.x)::

    /                               global attributes: id, orbit, time_reference, time_coverage_*, ...
    /PRODUCT                        dims time=1, scanline, ground_pixel, corner=4, layer, ...
        latitude, longitude, qa_value, <column>, <column>_precision    (time, scanline, ground_pixel)
        delta_time (ms since time_reference), time_utc                (time, scanline)
        time (s since 2010-01-01)                                      (time,)
    /PRODUCT/SUPPORT_DATA/GEOLOCATIONS  latitude_bounds, longitude_bounds
                                        (time, scanline, ground_pixel, corner)
    /PRODUCT/SUPPORT_DATA/DETAILED_RESULTS, INPUT_DATA
    /METADATA/GRANULE_DESCRIPTION, QA_STATISTICS, ALGORITHM_SETTINGS, ISO_METADATA, EOP_METADATA, ESA_METADATA

Pixel corners follow the S5P convention, counter-clockwise seen from above for an ascending orbit:
corner 0 = (scanline−, ground_pixel−), 1 = (scanline−, ground_pixel+), 2 = (scanline+, ground_pixel+),
3 = (scanline+, ground_pixel−).
"""

from __future__ import annotations

import math
import os
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Executor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import IO, Any, TypeVar

import h5netcdf
import h5py
import numba
import numpy as np
import numpy.typing as npt
import pandas as pd
import xarray as xr

from transforms.errors import GranuleNameError, GranuleReadError, InputError
from transforms.granules import GranuleName, parse_granule_name
from transforms.hdf5_chunks import read_array, read_into
from transforms.products import FILL_VALUE_FLOAT, ProductSpec, get_product
from transforms.soundings import (
    Source,
    attr_text,
    describe,
    empty_granule,
    hdf5_file,
    observations_attrs,
    peek,
    read_errors_as_granule_errors,
)

FILL_VALUE_INT32 = -2147483647
QA_FILL_VALUE = 255
TIME_EPOCH = datetime(2010, 1, 1, tzinfo=UTC)
"""Epoch of the ``time`` variable (``seconds since 2010-01-01 00:00:00``)."""

GEOLOCATIONS = "PRODUCT/SUPPORT_DATA/GEOLOCATIONS"
DETAILED_RESULTS = "PRODUCT/SUPPORT_DATA/DETAILED_RESULTS"
INPUT_DATA = "PRODUCT/SUPPORT_DATA/INPUT_DATA"
GRANULE_DESCRIPTION = "METADATA/GRANULE_DESCRIPTION"
QA_STATISTICS = "METADATA/QA_STATISTICS"

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_SCANLINE_CHUNK = 512


# --------------------------------------------------------------------------------------------- writer


def _text(value: str) -> np.bytes_ | str:
    """netCDF-C writes ASCII attributes as fixed-length strings (NC_CHAR); do the same when possible."""
    return np.bytes_(value.encode("ascii")) if value.isascii() else value


def _iso(t: datetime) -> str:
    return _as_utc(t).strftime("%Y-%m-%dT%H:%M:%SZ")


def _as_utc(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def _float_field(
    name: str, value: npt.ArrayLike | None, shape: tuple[int, ...], default: float
) -> npt.NDArray[np.float32]:
    if value is None:
        return np.full(shape, default, dtype=np.float32)
    arr = np.asarray(value, dtype=np.float32)
    if arr.shape != shape:
        raise InputError(
            f"{name} must have shape {shape} (scanline, ground_pixel[, corner]), got {arr.shape}"
        )
    return arr


def _with_fill(arr: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    return np.where(np.isfinite(arr), arr, np.float32(FILL_VALUE_FLOAT)).astype(np.float32)


def _set_attrs(obj: Any, attrs: Mapping[str, Any]) -> None:
    for key, val in attrs.items():
        obj.attrs[key] = _text(val) if isinstance(val, str) else val


def _f32(x: float) -> npt.NDArray[np.float32]:
    return np.array([x], dtype=np.float32)


def _i32(x: int) -> npt.NDArray[np.int32]:
    return np.array([x], dtype=np.int32)


def write_s5p_l2(
    target: str | os.PathLike[str] | IO[bytes],
    *,
    name: GranuleName,
    latitude: npt.ArrayLike,
    longitude: npt.ArrayLike,
    latitude_bounds: npt.ArrayLike,
    longitude_bounds: npt.ArrayLike,
    value: npt.ArrayLike,
    precision: npt.ArrayLike,
    qa_value: npt.ArrayLike,
    delta_time_ms: npt.ArrayLike,
    time_reference: datetime,
    surface_pressure: npt.ArrayLike | None = None,
    eastward_wind: npt.ArrayLike | None = None,
    northward_wind: npt.ArrayLike | None = None,
    include_averaging_kernel: bool = True,
    extra_attrs: Mapping[str, Any] | None = None,
) -> None:
    """Write one S5P L2 granule of product ``name.product`` with the real files' structure.

    Arrays are (scanline, ground_pixel) unless noted, any sizes: latitude/longitude (degrees),
    latitude_bounds/longitude_bounds (scanline, ground_pixel, 4) in S5P corner order, value/precision in
    the product's units (mol m-2; ppb for CH4) with NaN for fill, qa_value 0–1 (NaN = fill; stored as
    uint8 0..100 × 0.01), delta_time_ms (scanline,) milliseconds since ``time_reference`` (UTC).
    surface_pressure (Pa) and eastward/northward_wind (m s-1) default to plausible constants.
    ``extra_attrs`` are added to (or override) the global attributes. ``target`` is a path or a
    seekable, writable binary file object.
    """
    spec = get_product(name.product)
    lat = np.asarray(latitude, dtype=np.float32)
    if lat.ndim != 2 or lat.shape[0] < 1 or lat.shape[1] < 1:
        raise InputError(
            f"latitude must be 2-D (scanline, ground_pixel) with at least one pixel, got {lat.shape}"
        )
    shape2 = lat.shape
    n_scan, n_pix = shape2
    shape3 = (*shape2, 4)
    lon = _float_field("longitude", longitude, shape2, 0.0)
    lat_b = _float_field("latitude_bounds", latitude_bounds, shape3, 0.0)
    lon_b = _float_field("longitude_bounds", longitude_bounds, shape3, 0.0)
    val = _float_field("value", value, shape2, 0.0)
    prec = _float_field("precision", precision, shape2, 0.0)
    qa = np.asarray(qa_value, dtype=np.float64)
    if qa.shape != shape2:
        raise InputError(f"qa_value must have shape {shape2} (scanline, ground_pixel), got {qa.shape}")
    if np.any(np.isfinite(qa) & ((qa < 0) | (qa > 1))):
        raise InputError("qa_value must lie in 0–1 (NaN for fill); scale percentages by 0.01 first")
    qa_raw = np.where(np.isfinite(qa), np.rint(np.nan_to_num(qa) * 100), QA_FILL_VALUE).astype(np.uint8)
    dt = np.asarray(delta_time_ms, dtype=np.float64)
    if dt.shape != (n_scan,):
        raise InputError(f"delta_time_ms must have shape ({n_scan},) (scanline,), got {dt.shape}")
    dt_raw = np.where(np.isfinite(dt), np.rint(np.nan_to_num(dt)), FILL_VALUE_INT32).astype(np.int32)
    psurf = _float_field("surface_pressure", surface_pressure, shape2, 101325.0)
    u_wind = _float_field("eastward_wind", eastward_wind, shape2, 3.0)
    v_wind = _float_field("northward_wind", northward_wind, shape2, 1.0)

    t_ref = _as_utc(time_reference)
    scan_times = [t_ref + timedelta(milliseconds=float(ms)) if np.isfinite(ms) else None for ms in dt]
    valid_times = [t for t in scan_times if t is not None]
    cover_start = min(valid_times) if valid_times else name.start
    cover_end = max(valid_times) if valid_times else name.end

    chunks2 = (1, min(n_scan, _SCANLINE_CHUNK), n_pix)
    gz: dict[str, Any] = {"compression": "gzip", "compression_opts": 3, "shuffle": True}
    geo = ("time", "scanline", "ground_pixel")
    float_fill = np.float32(FILL_VALUE_FLOAT)

    try:
        with h5netcdf.File(target, "w") as f:
            _set_attrs(f, _global_attrs(name, spec, t_ref, cover_start, cover_end, lat, lon))
            if extra_attrs:
                _set_attrs(f, extra_attrs)

            prod = f.create_group("PRODUCT")
            prod.dimensions = {
                "scanline": n_scan,
                "ground_pixel": n_pix,
                "corner": 4,
                "time": 1,
                "layer": spec.layers,
                **dict(spec.extra_dimensions),
            }
            for dim, size, dim_attrs in (
                ("scanline", n_scan, {"units": "1", "axis": "Y", "long_name": "along-track dimension index"}),
                (
                    "ground_pixel",
                    n_pix,
                    {"units": "1", "axis": "X", "long_name": "across-track dimension index"},
                ),
                ("corner", 4, {"units": "1", "long_name": "pixel corner index"}),
                ("layer", spec.layers, {"units": "1", "long_name": "layer index"}),
            ):
                v = prod.create_variable(dim, (dim,), np.int32, data=np.arange(size, dtype=np.int32))
                _set_attrs(v, dim_attrs)
            seconds = int((t_ref - TIME_EPOCH).total_seconds())
            v = prod.create_variable("time", ("time",), np.int32, data=np.array([seconds], dtype=np.int32))
            _set_attrs(
                v,
                {
                    "units": "seconds since 2010-01-01 00:00:00",
                    "standard_name": "time",
                    "axis": "T",
                    "long_name": "reference time for the measurements",
                },
            )
            v = prod.create_variable(
                "delta_time",
                ("time", "scanline"),
                np.int32,
                data=dt_raw[None],
                fillvalue=np.int32(FILL_VALUE_INT32),
            )
            _set_attrs(
                v,
                {
                    "long_name": "offset from reference start time of measurement",
                    "units": f"milliseconds since {t_ref:%Y-%m-%d %H:%M:%S}",
                },
            )
            utc = np.array(
                [[t.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if t is not None else "" for t in scan_times]],
                dtype=object,
            )
            v = prod.create_variable("time_utc", ("time", "scanline"), h5py.string_dtype(), data=utc)
            _set_attrs(v, {"long_name": "Time of observation as ISO 8601 date-time string"})

            for var, data, attrs in (
                (
                    "latitude",
                    lat,
                    {
                        "long_name": "pixel center latitude",
                        "units": "degrees_north",
                        "standard_name": "latitude",
                        "valid_min": np.float32(-90.0),
                        "valid_max": np.float32(90.0),
                        "bounds": f"/{GEOLOCATIONS}/latitude_bounds",
                    },
                ),
                (
                    "longitude",
                    lon,
                    {
                        "long_name": "pixel center longitude",
                        "units": "degrees_east",
                        "standard_name": "longitude",
                        "valid_min": np.float32(-180.0),
                        "valid_max": np.float32(180.0),
                        "bounds": f"/{GEOLOCATIONS}/longitude_bounds",
                    },
                ),
            ):
                v = prod.create_variable(
                    var,
                    geo,
                    np.float32,
                    data=_with_fill(data)[None],
                    fillvalue=float_fill,
                    chunks=chunks2,
                    **gz,
                )
                _set_attrs(v, attrs)

            v = prod.create_variable(
                "qa_value",
                geo,
                np.uint8,
                data=qa_raw[None],
                fillvalue=np.uint8(QA_FILL_VALUE),
                chunks=chunks2,
                **gz,
            )
            _set_attrs(
                v,
                {
                    "units": "1",
                    "scale_factor": np.float32(0.01),
                    "add_offset": np.float32(0.0),
                    "valid_min": np.uint8(0),
                    "valid_max": np.uint8(100),
                    "long_name": "data quality value",
                    "comment": "A continuous quality descriptor, varying between 0 (no data) and 1 "
                    "(full quality data). Recommend to ignore data with qa_value < 0.5",
                    "coordinates": "longitude latitude",
                },
            )

            column_attrs: dict[str, Any] = {"units": spec.units, "coordinates": "longitude latitude"}
            if spec.multiplication_factor_to_convert_to_molecules_percm2 is not None:
                column_attrs["multiplication_factor_to_convert_to_molecules_percm2"] = np.float32(
                    spec.multiplication_factor_to_convert_to_molecules_percm2
                )
            value_names = [spec.value_var]
            since = spec.corrected_since_processor
            if spec.corrected_var and since is not None and name.processor_version >= since:
                value_names.append(spec.corrected_var)
            for var in value_names:
                v = prod.create_variable(
                    var,
                    geo,
                    np.float32,
                    data=_with_fill(val)[None],
                    fillvalue=float_fill,
                    chunks=chunks2,
                    **gz,
                )
                _set_attrs(
                    v,
                    {
                        **column_attrs,
                        "standard_name": spec.standard_name,
                        "long_name": spec.long_name,
                        "ancillary_variables": f"{spec.precision_var}",
                    },
                )
            v = prod.create_variable(
                spec.precision_var,
                geo,
                np.float32,
                data=_with_fill(prec)[None],
                fillvalue=float_fill,
                chunks=chunks2,
                **gz,
            )
            _set_attrs(
                v,
                {
                    **column_attrs,
                    "standard_name": f"{spec.standard_name} standard_error",
                    "long_name": f"Precision of the {spec.long_name[0].lower()}{spec.long_name[1:]}",
                },
            )

            support = prod.create_group("SUPPORT_DATA")
            geoloc = support.create_group("GEOLOCATIONS")
            for var, data, units in (
                ("latitude_bounds", lat_b, "degrees_north"),
                ("longitude_bounds", lon_b, "degrees_east"),
            ):
                v = geoloc.create_variable(
                    var,
                    (*geo, "corner"),
                    np.float32,
                    data=_with_fill(data)[None],
                    fillvalue=float_fill,
                    chunks=(*chunks2, 4),
                    **gz,
                )
                _set_attrs(
                    v, {"units": units, "long_name": f"{var.split('_')[0]} of the ground pixel corners"}
                )
            sat_lat = (
                np.nanmean(np.where(np.isfinite(lat), lat, np.nan), axis=1) if n_pix else np.zeros(n_scan)
            )
            sat_lon = (
                np.nanmean(np.where(np.isfinite(lon), lon, np.nan), axis=1) if n_pix else np.zeros(n_scan)
            )
            for var, data2, units in (
                ("satellite_latitude", sat_lat, "degrees_north"),
                ("satellite_longitude", sat_lon, "degrees_east"),
            ):
                arr = np.where(np.isfinite(data2), data2, FILL_VALUE_FLOAT).astype(np.float32)[None]
                v = geoloc.create_variable(
                    var, ("time", "scanline"), np.float32, data=arr, fillvalue=float_fill
                )
                _set_attrs(
                    v,
                    {"units": units, "long_name": f"{var.replace('_', ' ')} at the time of the measurement"},
                )
            sza = np.clip(np.abs(np.nan_to_num(lat)) * 0.9 + 10.0, 0, 89.0).astype(np.float32)
            for var, data, units in (
                ("solar_zenith_angle", sza, "degree"),
                ("viewing_zenith_angle", np.full(shape2, 30.0, np.float32), "degree"),
                ("solar_azimuth_angle", np.full(shape2, 150.0, np.float32), "degree"),
                ("viewing_azimuth_angle", np.full(shape2, 100.0, np.float32), "degree"),
            ):
                v = geoloc.create_variable(
                    var, geo, np.float32, data=data[None], fillvalue=float_fill, chunks=chunks2, **gz
                )
                _set_attrs(
                    v,
                    {
                        "units": units,
                        "long_name": var.replace("_", " "),
                        "coordinates": "/PRODUCT/longitude /PRODUCT/latitude",
                    },
                )

            detailed = support.create_group("DETAILED_RESULTS")
            flags = np.where(np.isfinite(val), 0, 1).astype(np.uint32)  # 1 = processing error (no retrieval)
            v = detailed.create_variable(
                "processing_quality_flags",
                geo,
                np.uint32,
                data=flags[None],
                fillvalue=np.uint32(0),
                chunks=chunks2,
                **gz,
            )
            _set_attrs(
                v,
                {
                    "long_name": "Processing quality flags",
                    "coordinates": "/PRODUCT/longitude /PRODUCT/latitude",
                },
            )
            for var, data, units in _detailed_fields(spec, val, shape2):
                v = detailed.create_variable(
                    var,
                    geo,
                    np.float32,
                    data=_with_fill(data)[None],
                    fillvalue=float_fill,
                    chunks=chunks2,
                    **gz,
                )
                _set_attrs(v, {"units": units, "long_name": var.replace("_", " ")})
            if include_averaging_kernel and spec.averaging_kernel_var:
                kernel_group = detailed if spec.averaging_kernel_group == DETAILED_RESULTS else prod
                _write_layer_variable(kernel_group, spec.averaging_kernel_var, n_scan, n_pix, spec.layers)

            inputs = support.create_group("INPUT_DATA")
            for var, data, in_attrs in (
                ("surface_pressure", psurf, {"units": "Pa", "standard_name": "surface_air_pressure"}),
                (
                    "surface_altitude",
                    np.zeros(shape2, np.float32),
                    {"units": "m", "standard_name": "surface_altitude"},
                ),
                ("eastward_wind", u_wind, {"units": "m s-1", "standard_name": "eastward_wind"}),
                ("northward_wind", v_wind, {"units": "m s-1", "standard_name": "northward_wind"}),
            ):
                v = inputs.create_variable(
                    var,
                    geo,
                    np.float32,
                    data=_with_fill(data)[None],
                    fillvalue=float_fill,
                    chunks=chunks2,
                    **gz,
                )
                _set_attrs(
                    v,
                    {
                        **in_attrs,
                        "long_name": var.replace("_", " "),
                        "coordinates": "/PRODUCT/longitude /PRODUCT/latitude",
                    },
                )
            v = inputs.create_variable(
                "snow_ice_flag",
                geo,
                np.uint8,
                data=np.zeros((1, *shape2), np.uint8),
                fillvalue=np.uint8(255),
                chunks=chunks2,
                **gz,
            )
            _set_attrs(
                v, {"long_name": "Snow-ice mask", "coordinates": "/PRODUCT/longitude /PRODUCT/latitude"}
            )

            _write_metadata(f, name, spec, val, qa_raw, cover_start, cover_end, lon)
    except (OSError, ValueError, TypeError) as err:
        raise InputError(f"cannot write granule {name.filename} to {target!r}: {err}") from err


def _write_layer_variable(group: Any, var: str, n_scan: int, n_pix: int, layers: int) -> None:
    """A (time, scanline, ground_pixel, layer) kernel, written block by block to keep memory small."""
    v = group.create_variable(
        var,
        ("time", "scanline", "ground_pixel", "layer"),
        np.float32,
        fillvalue=np.float32(FILL_VALUE_FLOAT),
        chunks=(1, min(n_scan, 64), n_pix, layers),
        compression="gzip",
        compression_opts=3,
        shuffle=True,
    )
    kernel = np.linspace(0.2, 1.2, layers, dtype=np.float32)
    for start in range(0, n_scan, 64):
        stop = min(start + 64, n_scan)
        v[0, start:stop] = np.broadcast_to(kernel, (stop - start, n_pix, layers))
    _set_attrs(v, {"units": "1", "long_name": "averaging kernel", "coordinates": "longitude latitude"})


def _detailed_fields(
    spec: ProductSpec, val: npt.NDArray[np.float32], shape: tuple[int, int]
) -> list[tuple[str, npt.NDArray[np.float32], str]]:
    cloud = np.full(shape, 0.1, np.float32)
    if spec.name == "no2":
        strat = np.where(np.isfinite(val), np.float32(2.5e-5), np.nan).astype(np.float32)
        return [
            ("nitrogendioxide_stratospheric_column", strat, "mol m-2"),
            ("nitrogendioxide_total_column", (val + strat).astype(np.float32), "mol m-2"),
            ("cloud_fraction_crb_nitrogendioxide_window", cloud, "1"),
            ("cloud_radiance_fraction_nitrogendioxide_window", cloud, "1"),
        ]
    if spec.name == "co":
        return [
            ("water_total_column", np.full(shape, 500.0, np.float32), "mol m-2"),
            ("scattering_optical_thickness_SWIR", np.full(shape, 0.05, np.float32), "1"),
        ]
    return [
        ("surface_albedo_SWIR", np.full(shape, 0.2, np.float32), "1"),
        ("aerosol_optical_thickness_SWIR", np.full(shape, 0.05, np.float32), "1"),
    ]


def _global_attrs(
    name: GranuleName,
    spec: ProductSpec,
    t_ref: datetime,
    start: datetime,
    end: datetime,
    lat: npt.NDArray[np.float32],
    lon: npt.NDArray[np.float32],
) -> dict[str, Any]:
    midnight = datetime(1950, 1, 1, tzinfo=UTC)
    unix = datetime(1970, 1, 1, tzinfo=UTC)
    days_1950 = (t_ref - midnight).total_seconds() / 86400.0
    duration = (end - start).total_seconds()
    attrs: dict[str, Any] = {
        "Conventions": "CF-1.7",
        "institution": spec.institution,
        "source": "Sentinel 5 precursor, TROPOMI, space-borne remote sensing, L2",
        "summary": spec.title,
        "tracking_id": str(uuid.uuid5(uuid.NAMESPACE_URL, name.id)),
        "id": name.id,
        "time_reference": _iso(t_ref),
        "time_reference_days_since_1950": _i32(math.floor(days_1950)),
        "time_reference_julian_day": np.array([days_1950 + 2433282.5]),
        "time_reference_seconds_since_1970": np.array([int((t_ref - unix).total_seconds())], dtype=np.int64),
        "time_coverage_start": _iso(start),
        "time_coverage_end": _iso(end),
        "time_coverage_duration": f"PT{duration:.3f}S",
        "time_coverage_resolution": "PT0.840S",
        "orbit": _i32(name.orbit),
        "references": spec.references,
        "processor_version": name.processor_version_dotted,
        "keywords_vocabulary": "AGU index terms, http://publications.agu.org/author-resource-center/index-terms/",
        "keywords": "0345 Pollution, Urban and Regional; 0365 Troposphere, Composition and Chemistry; "
        "3360 Remote Sensing",
        "standard_name_vocabulary": "NetCDF Climate and Forecast Metadata Conventions Standard Name Table "
        "(v29, 08 July 2015), http://cfconventions.org/standard-names.html",
        "naming_authority": "nl.knmi" if spec.institution == "KNMI" else "nl.sron",
        "cdm_data_type": "Swath",
        "date_created": _iso(name.production_time),
        "creator_name": "The Sentinel 5 Precursor TROPOMI Level 2 products are developed with funding from "
        "the European Space Agency (ESA), the Netherlands Space Office (NSO), the Belgian Science Policy "
        "Office, the German Aerospace Center (DLR) and the Bayerisches Staatsministerium für Wirtschaft "
        "und Medien, Energie und Technologie (StMWi).",
        "creator_url": "http://www.tropomi.eu",
        "creator_email": "EOSupport@Copernicus.esa.int",
        "project": "Sentinel 5 precursor/TROPOMI",
        "license": "No conditions apply",
        "platform": "S5P",
        "sensor": "TROPOMI",
        "spatial_resolution": spec.spatial_resolution,
        "identifier_product_doi_authority": "http://dx.doi.org/",
        "algorithm_version": name.processor_version_dotted,
        "title": spec.title,
        "product_version": spec.product_version,
        "processing_status": f"{name.mode}-processing nominal product",
        "history": f"{_iso(name.production_time)} eolake synthetic granule (transforms.s5p.write_s5p_l2)",
        "geolocation_grid_from_band": _i32(4 if spec.name == "no2" else 7),
        "revision_control_identifier": "",
        "build_date": _iso(name.production_time),
    }
    finite_lat, finite_lon = lat[np.isfinite(lat)], lon[np.isfinite(lon)]
    if finite_lat.size and finite_lon.size:
        attrs["geospatial_lat_min"] = _f32(float(finite_lat.min()))
        attrs["geospatial_lat_max"] = _f32(float(finite_lat.max()))
        attrs["geospatial_lon_min"] = _f32(float(finite_lon.min()))
        attrs["geospatial_lon_max"] = _f32(float(finite_lon.max()))
    return attrs


def _write_metadata(
    f: Any,
    name: GranuleName,
    spec: ProductSpec,
    val: npt.NDArray[np.float32],
    qa_raw: npt.NDArray[np.uint8],
    start: datetime,
    end: datetime,
    lon: npt.NDArray[np.float32],
) -> None:
    meta = f.create_group("METADATA")
    n_total = int(val.size)
    n_ok = int(np.isfinite(val).sum())
    qa_stats = meta.create_group("QA_STATISTICS")
    _set_attrs(
        qa_stats,
        {
            "number_of_groundpixels": _i32(n_total),
            "number_of_processed_pixels": _i32(n_total),
            "number_of_successfully_processed_pixels": _i32(n_ok),
            "number_of_rejected_pixels_not_enough_spectrum": _i32(0),
            "number_of_failed_retrievals": _i32(n_total - n_ok),
            "number_of_ground_pixels_with_warnings": _i32(
                int(((qa_raw < 100) & (qa_raw != QA_FILL_VALUE)).sum())
            ),
            "global_processing_warnings": "None",
        },
    )
    algo = meta.create_group("ALGORITHM_SETTINGS")
    _set_attrs(
        algo,
        {
            "configuration.version.algorithm": name.processor_version_dotted,
            "output.1.type": spec.product_type,
            "output.count": "1",
            "processing.algorithm": spec.product_type[4:],
        },
    )
    crossing = float(np.nanmedian(lon)) if np.isfinite(lon).any() else 0.0
    gd = meta.create_group("GRANULE_DESCRIPTION")
    _set_attrs(
        gd,
        {
            "GranuleStart": _iso(start),
            "GranuleEnd": _iso(end),
            "InstrumentName": "TROPOMI",
            "MissionName": "Sentinel-5 precursor",
            "MissionShortName": "S5P",
            "ProcessLevel": name.level[1:],
            "ProcessingCenter": "PDGS-OP",
            "ProcessingNode": "eolake",
            "ProcessorVersion": name.processor_version_dotted,
            "ProductFormatVersion": _i32(10100),
            "ProcessingMode": name.processing_mode_name,
            "LongitudeOfDaysideNadirEquatorCrossing": _f32(crossing),
            "ProductShortName": spec.product_type,
        },
    )
    iso = meta.create_group("ISO_METADATA")
    _set_attrs(iso, {"objectType": "gmi:MI_Metadata", "gmd:fileIdentifier": name.id})
    eop = meta.create_group("EOP_METADATA")
    _set_attrs(eop, {"objectType": "atm:EarthObservation", "gml:id": name.id})
    esa = meta.create_group("ESA_METADATA")
    header = esa.create_group("earth_explorer_header")
    _set_attrs(header, {"objectType": "Earth_Explorer_Header"})


# --------------------------------------------------------------------------------------------- reader


def _check_signature(source: Source, label: str) -> None:
    """Fail fast, with a clear reason, on empty or non-HDF5 input (HDF5 may also sit after a user block)."""
    if isinstance(source, str | os.PathLike):
        try:
            with open(source, "rb") as fh:
                head = fh.read(8)
        except FileNotFoundError as err:
            raise GranuleReadError(f"granule {label} does not exist; check the path or URL") from err
        except OSError as err:
            raise GranuleReadError(f"cannot open granule {label}: {err}") from err
    else:
        head = peek(source, label)
    if not head:
        raise empty_granule(label)


@contextmanager
def _open_hdf5(source: Source, label: str) -> Iterator[h5py.File]:
    _check_signature(source, label)
    with hdf5_file(source, label) as handle:
        yield handle


def _parse_time(text: str) -> datetime | None:
    text = text.strip().replace("Z", "").replace("T", " ")
    try:
        stamp = pd.Timestamp(text)
    except (ValueError, TypeError):
        return None
    if stamp is pd.NaT:
        return None
    out = stamp.to_pydatetime()
    return _as_utc(out)


def _variable(group: h5py.Group, var: str, where: str, label: str) -> h5py.Dataset:
    obj = group.get(var)
    if not isinstance(obj, h5py.Dataset):
        raise GranuleReadError(
            f"granule {label}: {where} group has no variable {var} (wrong product, a metadata-only skeleton, "
            "or an unsupported processor version)"
        )
    return obj


def _squeeze_time(arr: npt.NDArray[Any], ndim: int) -> npt.NDArray[Any]:
    """Drop the leading ``time`` dim of size 1 that real files carry; accept files without it."""
    if arr.ndim == ndim + 1 and arr.shape[0] == 1:
        return np.asarray(arr[0])
    return arr


def _decode(
    ds: h5py.Dataset, ndim: int, label: str, executor: Executor | None = None
) -> npt.NDArray[np.floating[Any]]:
    """Read a variable as float with fills → NaN and CF scale_factor/add_offset applied. Chunks are read by
    :mod:`transforms.hdf5_chunks` (in ``executor``'s threads if given). Float32 variables are read straight
    into their result (no copy); 1-byte integers (``qa_value``) decode through a 256-entry table built with
    the same arithmetic as the general path."""
    if ds.ndim not in (ndim, ndim + 1) or (ds.ndim == ndim + 1 and ds.shape[0] != 1):
        raise GranuleReadError(
            f"granule {label}: variable {ds.name} has shape {ds.shape}, expected {ndim} dims"
        )
    attrs = ds.attrs
    fills = [np.asarray(attrs[key]).ravel() for key in ("_FillValue", "missing_value") if key in attrs]
    scale = float(np.asarray(attrs.get("scale_factor", 1.0)).ravel()[0])
    offset = float(np.asarray(attrs.get("add_offset", 0.0)).ravel()[0])
    unscaled = scale == 1.0 and offset == 0.0
    if ds.dtype == np.float32 and unscaled:
        out = np.empty(ds.shape, dtype=np.float32)
        read_into(ds, out, label=label, executor=executor)
        out = _squeeze_time(out, ndim)
        limit = np.float32(FILL_VALUE_FLOAT) * 0.999
        _blank_fills(out.reshape(-1), limit)  # non-finite or the netCDF float fill → NaN, in one pass
        for fill in fills:
            small = fill[np.abs(fill.astype(np.float64)) < limit]
            if small.size:
                np.copyto(out, np.float32(np.nan), where=np.isin(out, small))
        return out
    raw = _squeeze_time(read_array(ds, label=label, executor=executor), ndim)
    if raw.dtype.itemsize == 1 and np.issubdtype(raw.dtype, np.integer):
        codes = np.arange(256, dtype=np.uint8)  # every bit pattern; table[u] decodes the value u encodes
        table = _decode_values(codes.view(raw.dtype), fills, scale, offset)
        return table[raw.view(np.uint8)]
    return _decode_values(raw, fills, scale, offset)


@numba.njit(cache=True, nogil=True, fastmath=False)
def _blank_fills(a: Any, limit: Any) -> None:
    """Set to NaN, in place, every element of the flat float32 ``a`` that is not finite with ``|x| < limit``
    (no fastmath: the NaN test must stay)."""
    for i in range(a.shape[0]):
        if not abs(a[i]) < limit:
            a[i] = np.nan


def _decode_values(
    raw: npt.NDArray[Any], fills: list[npt.NDArray[Any]], scale: float, offset: float
) -> npt.NDArray[np.floating[Any]]:
    """Raw values decoded: fills (and, for floats, non-finite and netCDF-fill values) → NaN, then
    ``raw * scale_factor + add_offset`` in double precision, rounded to float32 (float64 stays float64)."""
    invalid = np.zeros(raw.shape, dtype=bool)
    for fill in fills:
        invalid |= np.isin(raw, fill)
    if np.issubdtype(raw.dtype, np.floating) and scale == 1.0 and offset == 0.0:
        out = raw.astype(np.float32 if raw.dtype.itemsize <= 4 else np.float64)
        invalid |= ~np.isfinite(out) | (np.abs(out) >= np.float32(FILL_VALUE_FLOAT) * 0.999)
    else:
        inverse = 1.0 / scale if scale != 0 else 0.0
        data = raw.astype(np.float64)
        # k * 0.01 is not the double nearest k/100: divide by the integer reciprocal when there is one
        if inverse and abs(inverse - round(inverse)) < 1e-5 * abs(inverse):
            data = data / round(inverse) + offset
        else:
            data = data * scale + offset
        out = data.astype(np.float32)
    out[invalid] = np.nan
    return np.asarray(out, dtype=out.dtype)


def _delta_ms(ds: h5py.Dataset, n_scan: int, label: str) -> npt.NDArray[np.float64]:
    raw = _squeeze_time(ds[()], 1)
    if raw.ndim == 2 and raw.shape[0] == n_scan:  # some files repeat it per pixel
        raw = raw[:, 0]
    if raw.shape != (n_scan,):
        raise GranuleReadError(f"granule {label}: delta_time has shape {ds.shape}, expected (time, {n_scan})")
    data = raw.astype(np.float64)
    for key in ("_FillValue", "missing_value"):
        if key in ds.attrs:
            data[np.isin(raw, np.asarray(ds.attrs[key]).ravel())] = np.nan
    data[np.abs(data) >= FILL_VALUE_FLOAT * 0.999] = np.nan
    return data


def _reference_time(f: h5py.File, product: h5py.Group, label: str) -> datetime:
    if "time_reference" in f.attrs:
        parsed = _parse_time(attr_text(f.attrs["time_reference"]))
        if parsed is not None:
            return parsed
    delta = product.get("delta_time")
    if isinstance(delta, h5py.Dataset) and "units" in delta.attrs:
        units = attr_text(delta.attrs["units"])
        if " since " in units:
            parsed = _parse_time(units.split(" since ", 1)[1])
            if parsed is not None:
                return parsed
    tvar = product.get("time")
    if isinstance(tvar, h5py.Dataset) and tvar.size:
        return TIME_EPOCH + timedelta(seconds=float(np.asarray(tvar[()]).ravel()[0]))
    raise GranuleReadError(
        f"granule {label} has no usable time reference "
        "(global time_reference, delta_time units or PRODUCT/time)"
    )


def _check_product(f: h5py.File, spec: ProductSpec, label: str) -> str:
    """Return the granule id; raise if the file says it is another product."""
    found: str | None = None
    gd = f.get(GRANULE_DESCRIPTION)
    if isinstance(gd, h5py.Group) and "ProductShortName" in gd.attrs:
        found = attr_text(gd.attrs["ProductShortName"])
    granule_id = attr_text(f.attrs["id"]) if "id" in f.attrs else ""
    if found is None and granule_id:
        try:
            found = parse_granule_name(granule_id).product_type
        except GranuleNameError:
            found = None
    if found is not None and found != spec.product_type:
        try:
            hint = f"; open it with product={get_product(found).name!r}"
        except InputError:
            hint = ""
        raise GranuleReadError(
            f"product mismatch: granule {label} is {found}, not {spec.product_type} ({spec.name!r}){hint}"
        )
    if not granule_id:
        granule_id = os.path.splitext(os.path.basename(label))[0]
    return granule_id


@dataclass(frozen=True)
class Pixels:
    """One granule's pixels as plain arrays, scanline-major (pixel = scanline × ground_pixel): ``value`` and
    ``uncertainty`` (the precision, product units), ``qa`` (0–1), ``latitude``/``longitude`` (degrees), dims
    (pixel,), NaN for fill; ``scan_time`` (scanline,) datetime64[ns] UTC, NaT for fill;
    ``latitude_bounds``/``longitude_bounds`` (pixel, corner) or None when the corners were not read."""

    value: npt.NDArray[np.floating[Any]]
    uncertainty: npt.NDArray[np.floating[Any]]
    qa: npt.NDArray[np.floating[Any]]
    latitude: npt.NDArray[np.floating[Any]]
    longitude: npt.NDArray[np.floating[Any]]
    scan_time: npt.NDArray[np.datetime64]
    latitude_bounds: npt.NDArray[np.floating[Any]] | None
    longitude_bounds: npt.NDArray[np.floating[Any]] | None
    n_scanline: int
    n_ground_pixel: int
    granule_id: str
    value_variable: str
    time_reference: datetime

    @property
    def size(self) -> int:
        """Number of pixels."""
        return self.n_scanline * self.n_ground_pixel


def open_observations(source: Source, *, product: str | ProductSpec, corners: bool = True) -> xr.Dataset:
    """Read an S5P L2 granule into a flat, in-memory observations Dataset.

    ``source`` is a path or a binary file object (a plain ``open(..., "rb")``, ``io.BytesIO`` or an
    fsspec file); it is not closed. Returns dims ``pixel`` (scanline-major, scanline × ground_pixel)
    and ``corner`` (4) with variables ``value`` and ``uncertainty`` (the precision) in the product's units,
    ``qa`` (0–1), ``latitude``/``longitude`` (degrees), ``time`` (datetime64[ns] UTC, naive),
    ``latitude_bounds``/``longitude_bounds`` (pixel, corner), and coords ``scanline``/``ground_pixel``
    (the pixel's position in the swath). Fill values are NaN (NaT for time). Nothing is filtered by qa.
    Raises :class:`GranuleReadError` for empty, truncated, corrupt or wrong-product files.
    ``corners=False`` is the lean read for centre binning: the corner variables are neither read nor returned.
    A product of another family (OCO/ACOS Lite, NIES GOSAT, TanSat) is read by its own reader
    (:mod:`transforms.observations`), so every caller of this function reads every product.
    """
    spec = get_product(product)
    if spec.family != "s5p":
        from transforms.observations import open_observations as open_other

        return open_other(source, product=spec, corners=corners)
    return _reading(source, lambda f, label: _observations(f, spec, _read(f, spec, label, corners=corners)))


def read_pixels(
    source: Source, *, product: str | ProductSpec, corners: bool = True, executor: Executor | None = None
) -> Pixels:
    """The pixels of an S5P L2 granule as plain arrays (:class:`Pixels`): what :func:`open_observations`
    returns without building a Dataset (the gridding hot path). Same errors; S5P products only (other
    families: :func:`transforms.observations.open_observations`). ``executor`` (optional, e.g. a
    ``ThreadPoolExecutor``) inflates each variable's chunks in its threads: less wall time, same CPU time."""
    spec = get_product(product)
    if spec.family != "s5p":
        raise InputError(f"read_pixels reads S5P granules; read {spec.name} with transforms.observations")
    return _reading(source, lambda f, label: _read(f, spec, label, corners=corners, executor=executor))


_T = TypeVar("_T")


def _reading(source: Source, read: Callable[[h5py.File, str], _T]) -> _T:
    label = describe(source)

    def opened() -> _T:
        with _open_hdf5(source, label) as f:
            return read(f, label)

    return read_errors_as_granule_errors(label, opened)


def _read(
    f: h5py.File, spec: ProductSpec, label: str, *, corners: bool = True, executor: Executor | None = None
) -> Pixels:
    granule_id = _check_product(f, spec, label)
    product = f.get("PRODUCT")
    if not isinstance(product, h5py.Group):
        raise GranuleReadError(f"granule {label} has no PRODUCT group: not an S5P L2 file")
    value_var = spec.value_var
    if spec.corrected_var and isinstance(product.get(spec.corrected_var), h5py.Dataset):
        value_var = spec.corrected_var
    lat = _decode(_variable(product, "latitude", "PRODUCT", label), 2, label, executor)
    n_scan, n_pix = lat.shape
    lon = _decode(_variable(product, "longitude", "PRODUCT", label), 2, label, executor)
    value = _decode(_variable(product, value_var, "PRODUCT", label), 2, label, executor)
    precision = _decode(_variable(product, spec.precision_var, "PRODUCT", label), 2, label, executor)
    qa = _decode(_variable(product, "qa_value", "PRODUCT", label), 2, label, executor)
    geoloc = f.get(GEOLOCATIONS)
    if not isinstance(geoloc, h5py.Group):
        raise GranuleReadError(f"granule {label} has no {GEOLOCATIONS} group (pixel corners)")
    bounds: dict[str, npt.NDArray[np.floating[Any]]] = {}
    if corners:
        for var in ("latitude_bounds", "longitude_bounds"):
            bounds[var] = _decode(_variable(geoloc, var, GEOLOCATIONS, label), 3, label, executor)
    for var, arr in (
        ("longitude", lon),
        (value_var, value),
        (spec.precision_var, precision),
        ("qa_value", qa),
    ):
        if arr.shape != (n_scan, n_pix):
            raise GranuleReadError(f"granule {label}: {var} has shape {arr.shape}, latitude {lat.shape}")
    for var, arr in bounds.items():
        if arr.shape != (n_scan, n_pix, 4):
            raise GranuleReadError(
                f"granule {label}: {var} has shape {arr.shape}, expected ({n_scan}, {n_pix}, 4)"
            )

    t_ref = _reference_time(f, product, label)
    delta = _delta_ms(_variable(product, "delta_time", "PRODUCT", label), n_scan, label)
    ref64 = np.datetime64(t_ref.replace(tzinfo=None), "ns")
    scan_time = np.full(n_scan, np.datetime64("NaT", "ns"))
    ok = np.isfinite(delta)
    scan_time[ok] = ref64 + np.rint(delta[ok] * 1e6).astype("timedelta64[ns]")

    n = n_scan * n_pix
    return Pixels(
        value=value.reshape(n),
        uncertainty=precision.reshape(n),
        qa=qa.reshape(n),
        latitude=lat.reshape(n),
        longitude=lon.reshape(n),
        scan_time=scan_time,
        latitude_bounds=bounds["latitude_bounds"].reshape(n, 4) if corners else None,
        longitude_bounds=bounds["longitude_bounds"].reshape(n, 4) if corners else None,
        n_scanline=n_scan,
        n_ground_pixel=n_pix,
        granule_id=granule_id,
        value_variable=value_var,
        time_reference=t_ref,
    )


def _observations(f: h5py.File, spec: ProductSpec, px: Pixels) -> xr.Dataset:
    n_scan, n_pix, n = px.n_scanline, px.n_ground_pixel, px.size
    value_var, t_ref, granule_id = px.value_variable, px.time_reference, px.granule_id
    value, precision, qa, lat, lon = px.value, px.uncertainty, px.qa, px.latitude, px.longitude
    bounds = {}
    if px.latitude_bounds is not None and px.longitude_bounds is not None:
        bounds = {"latitude_bounds": px.latitude_bounds, "longitude_bounds": px.longitude_bounds}
    scan_time = px.scan_time
    scanline = np.repeat(np.arange(n_scan, dtype=np.int32), n_pix)
    ground_pixel = np.tile(np.arange(n_pix, dtype=np.int32), n_scan)
    value_attrs = dict(units=spec.units, long_name=spec.long_name, standard_name=spec.standard_name)
    ds = xr.Dataset(
        {
            "value": ("pixel", value.reshape(n), {**value_attrs, "source_variable": f"/PRODUCT/{value_var}"}),
            "uncertainty": (
                "pixel",
                precision.reshape(n),
                {
                    "units": spec.units,
                    "long_name": f"precision (1-sigma) of {value_var}",
                    "standard_name": f"{spec.standard_name} standard_error",
                    "source_variable": f"/PRODUCT/{spec.precision_var}",
                },
            ),
            "qa": (
                "pixel",
                qa.reshape(n),
                {
                    "units": "1",
                    "long_name": "data quality value (0 no data – 1 full quality)",
                    "qa_threshold": spec.qa_threshold,
                },
            ),
            "latitude": ("pixel", lat.reshape(n), {"units": "degrees_north", "standard_name": "latitude"}),
            "longitude": ("pixel", lon.reshape(n), {"units": "degrees_east", "standard_name": "longitude"}),
            "time": ("pixel", np.repeat(scan_time, n_pix), {"long_name": "time of the measurement (UTC)"}),
            **{
                var: (("pixel", "corner"), arr.reshape(n, 4), {"units": units})
                for (var, arr), units in zip(bounds.items(), ("degrees_north", "degrees_east"), strict=False)
            },
        },
        coords={
            "scanline": ("pixel", scanline, {"long_name": "along-track index in the granule"}),
            "ground_pixel": ("pixel", ground_pixel, {"long_name": "across-track index in the granule"}),
        },
        attrs={
            **observations_attrs(spec, granule_id, value_var),
            "time_reference": _iso(t_ref),
            "n_scanline": n_scan,
            "n_ground_pixel": n_pix,
        },
    )
    for key in ("orbit", "processor_version", "product_version"):
        if key in f.attrs:
            raw = f.attrs[key]
            ds.attrs[key] = int(np.asarray(raw).ravel()[0]) if key == "orbit" else attr_text(raw)
    return ds
