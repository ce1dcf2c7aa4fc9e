"""NIES GOSAT TANSO-FTS SWIR L2 CO2 (product ``C01S``) HDF5 files, both directions.

:func:`open_nies_observations` reads a file into the standard observations Dataset, reading only
``/Data/geolocation/{latitude,longitude}``, ``/Data/mixingRatio/XCO2`` (ppm), ``/Data/mixingRatio/XCO2Error``
and ``/scanAttribute/time``. :func:`write_nies_l2` writes one for the simulator and tests.

Layout (plain HDF5, not netCDF; one value per sounding on a single dimension)::

    /Data/geolocation/latitude, longitude        float32 (sounding,) degrees
    /Data/mixingRatio/XCO2, XCO2Error            float32 (sounding,) ppm
    /scanAttribute/time                          fixed strings "YYYY-MM-DD hh:mm:ss.sss" (UTC)
    /scanAttribute/scanID                        fixed strings
    /Global/metadata/satelliteName ("GOSAT"), sensorName ("TANSO-FTS"), productName ("C01S"),
                    processingLevel ("L2"), algorithmVersion, productVersion

Verified: the group paths ``/Data/geolocation``, ``/Data/mixingRatio/XCO2`` and ``/scanAttribute/time`` (the
formats note; HARP's GOSAT FTS L2 ingestion maps time from ``/scanAttribute/time``) and the
``/Global/metadata/satelliteName`` check (CODA's GOSAT product detection). Assumed: the ``XCO2Error`` name, the
time string format, the invalid value −9999 (``invalidValue`` attribute), and that the file holds only
soundings that passed NIES screening (so quality is "a finite XCO2"). No footprint vertices are published:
corners are squares of the product's nominal footprint (10.5 km circle as an equal-area square).
"""

from __future__ import annotations

import os
from typing import IO

import h5py
import numpy as np
import numpy.typing as npt
import xarray as xr

from transforms.errors import GranuleReadError, InputError
from transforms.granules import GranuleName
from transforms.products import ProductSpec
from transforms.soundings import (
    Source,
    attr_text,
    granule_stem,
    observations,
    read_float,
    read_sounding_file,
    sounding_ids,
    square_corners,
    variable,
)

INVALID = -9999.0
TIME_FORMAT_LEN = 23  # "YYYY-MM-DD hh:mm:ss.sss"


def write_nies_l2(
    target: str | os.PathLike[str] | IO[bytes],
    *,
    name: GranuleName,
    time: npt.ArrayLike,
    latitude: npt.ArrayLike,
    longitude: npt.ArrayLike,
    xco2: npt.ArrayLike,
    xco2_error: npt.ArrayLike,
) -> None:
    """Write a NIES SWIR L2 CO2 file. Arrays (sounding,): time (datetime64, UTC), latitude/longitude
    (degrees), xco2/xco2_error (ppm; NaN is written as the invalid value −9999)."""
    if name.family != "gosat_nies":
        raise InputError(f"write_nies_l2 writes NIES GOSAT L2 files, not {name.product} ({name.filename})")
    lat = np.asarray(latitude, dtype=np.float32)
    n = lat.shape[0] if lat.ndim == 1 else -1
    arrays = {
        "longitude": np.asarray(longitude, dtype=np.float32),
        "XCO2": np.asarray(xco2, dtype=np.float32),
        "XCO2Error": np.asarray(xco2_error, dtype=np.float32),
    }
    times = np.asarray(time, dtype="datetime64[ms]")
    if n < 0 or any(a.shape != (n,) for a in (*arrays.values(), times)):
        raise InputError(
            "latitude, longitude, xco2, xco2_error and time must all be 1-D (sounding,) of one length"
        )
    text = np.char.replace(np.datetime_as_string(times, unit="ms"), "T", " ")
    with h5py.File(target, "w") as f:
        geo = f.create_group("Data/geolocation")
        mix = f.create_group("Data/mixingRatio")
        for group, var, arr, unit in (
            (geo, "latitude", lat, "deg"),
            (geo, "longitude", arrays["longitude"], "deg"),
            (mix, "XCO2", arrays["XCO2"], "ppm"),
            (mix, "XCO2Error", arrays["XCO2Error"], "ppm"),
        ):
            data = np.where(np.isfinite(arr), arr, np.float32(INVALID)).astype(np.float32)
            ds = group.create_dataset(var, data=data, compression="gzip" if n else None)
            ds.attrs["unit"] = np.bytes_(unit)
            ds.attrs["invalidValue"] = np.float32(INVALID)
        scan = f.create_group("scanAttribute")
        scan.create_dataset("time", data=np.array(text, dtype=f"S{TIME_FORMAT_LEN}"))
        ids = sounding_ids(times, np.ones(n, dtype=np.int8)).astype(str)
        scan.create_dataset("scanID", data=np.array(ids, dtype="S20"))
        meta = f.create_group("Global/metadata")
        for key, val in (
            ("satelliteName", "GOSAT"),
            ("sensorName", "TANSO-FTS"),
            ("productName", name.product_type),
            ("processingLevel", "L2"),
            ("algorithmVersion", name.processor_version[:2] + "." + name.processor_version[2:]),
            ("productVersion", name.processor_version),
            ("fileName", name.filename),
        ):
            meta.create_dataset(key, data=np.bytes_(val))


def open_nies_observations(source: Source, *, product: str | ProductSpec, corners: bool = True) -> xr.Dataset:
    """Read a NIES SWIR L2 CO2 file into the standard observations Dataset (dim ``pixel`` = sounding):
    ``value`` XCO2 (ppm), ``uncertainty`` XCO2Error, ``qa`` 1 where XCO2 is valid. Raises
    :class:`GranuleReadError` for empty, truncated, corrupt or non-GOSAT files."""
    return read_sounding_file(source, product, lambda f, spec, label: _read(f, spec, label, corners=corners))


def _read(f: h5py.File, spec: ProductSpec, label: str, *, corners: bool) -> xr.Dataset:
    sat = f.get("Global/metadata/satelliteName")
    if not isinstance(sat, h5py.Dataset) or attr_text(sat[()]) != "GOSAT":
        raise GranuleReadError(
            f"granule {label} is not a GOSAT file (no /Global/metadata/satelliteName 'GOSAT')"
        )
    lat = read_float(variable(f, "Data/geolocation/latitude", label), missing=INVALID)
    lon = read_float(variable(f, "Data/geolocation/longitude", label), missing=INVALID)
    value = read_float(variable(f, spec.value_var, label), missing=INVALID)
    unc = read_float(variable(f, spec.precision_var, label), missing=INVALID)
    raw = np.asarray(variable(f, "scanAttribute/time", label)[()])
    text = np.char.replace(np.char.decode(raw.astype("S"), "ascii"), " ", "T")
    try:
        time = text.astype("datetime64[ns]")
    except ValueError as err:
        raise GranuleReadError(
            f"granule {label}: /scanAttribute/time is not 'YYYY-MM-DD hh:mm:ss.sss': {err}"
        ) from err
    bounds = square_corners(lat, lon, spec.footprint_km) if corners and spec.footprint_km else None
    product_name = f.get("Global/metadata/productName")
    version = f.get("Global/metadata/productVersion")
    return observations(
        spec=spec,
        granule_id=granule_stem(label),
        value=value,
        uncertainty=unc,
        flag=None,
        latitude=lat,
        longitude=lon,
        time=time,
        sounding_id=sounding_ids(time, np.ones(time.shape[0], dtype=np.int8)),
        bounds=bounds,
        value_source=f"/{spec.value_var}",
        attrs={
            "product_name": attr_text(product_name[()]) if isinstance(product_name, h5py.Dataset) else "",
            "product_version": attr_text(version[()]) if isinstance(version, h5py.Dataset) else "",
        },
    )
