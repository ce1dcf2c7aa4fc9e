"""Flat sounding files (OCO-2/OCO-3/ACOS Lite, TanSat lite, NIES GOSAT L2): what their readers and writers share.

A sounding file holds one value per sounding on a single dimension; readers turn it into the standard
observations Dataset of :mod:`transforms.observations` (dim ``pixel`` = sounding, ``corner`` = 4): ``value``,
``uncertainty`` (value units), ``qa`` (1 good / 0 bad from the product's flag), ``quality_flag`` (the raw
flag, when the product has one), ``latitude``/``longitude`` (degrees), ``time`` (datetime64[ns], UTC, naive),
``latitude_bounds``/``longitude_bounds`` (pixel, corner) and coord ``sounding_id``. Files are opened with
h5py and only the variables asked for are read.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import IO, Any, TypeVar

import h5py
import numpy as np
import numpy.typing as npt
import xarray as xr

from transforms.errors import GranuleReadError
from transforms.products import ProductSpec, get_product

Source = str | os.PathLike[str] | IO[bytes]
LITE_MISSING = -999999.0
"""Missing value of the OCO/ACOS Lite files (``missing_value`` attribute, verified on ACOS Lite 7.3)."""
EPOCH_1970 = np.datetime64("1970-01-01T00:00:00", "ns")
KM_PER_DEG_LAT = 111.195
_T = TypeVar("_T")


def describe(source: Source) -> str:
    """A label for errors: the path, or the file object's name."""
    if isinstance(source, str | os.PathLike):
        return os.fspath(source)
    for attr in ("path", "name", "full_name"):
        label = getattr(source, attr, None)
        if isinstance(label, str) and label:
            return label
    return repr(source)


def peek(source: IO[bytes], label: str) -> bytes:
    """The first 8 bytes of a binary file object, its position kept; an unreadable one raises
    :class:`GranuleReadError`."""
    try:
        pos = source.tell()
        head = source.read(8)
        source.seek(pos)
    except (OSError, ValueError) as err:
        raise GranuleReadError(
            f"cannot read granule {label}: the file object is not readable ({err})"
        ) from err
    return head


def empty_granule(label: str) -> GranuleReadError:
    """The error for a 0-byte granule."""
    return GranuleReadError(f"granule {label} is empty (0 bytes): download it again")


def hdf5_file(source: Source, label: str) -> h5py.File:
    """``source`` opened read-only with h5py; non-HDF5 input raises :class:`GranuleReadError`."""
    try:
        return h5py.File(source, "r")
    except OSError as err:
        raise GranuleReadError(
            f"granule {label} is not an HDF5/netCDF4 file (truncated or corrupt?): {err}; download it again"
        ) from err


@contextmanager
def open_hdf5(source: Source, label: str) -> Iterator[h5py.File]:
    """Open ``source`` read-only with h5py; empty, missing, truncated or non-HDF5 input raises
    :class:`GranuleReadError` with the reason (HDF5 and netCDF4 files alike)."""
    if isinstance(source, str | os.PathLike):
        if not os.path.exists(source):
            raise GranuleReadError(f"granule {label} does not exist; check the path or URL")
        if os.path.getsize(source) == 0:
            raise empty_granule(label)
    elif not peek(source, label):
        raise empty_granule(label)
    with hdf5_file(source, label) as handle:
        yield handle


READ_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    KeyError,
    ValueError,
    TypeError,
    RuntimeError,
    IndexError,
)
"""The low-level errors a truncated or corrupt file raises while reading (readers turn them into
GranuleReadError)."""


def read_errors_as_granule_errors(label: str, read: Callable[[], _T]) -> _T:
    """``read()``, with the low-level errors of :data:`READ_ERRORS` turned into a :class:`GranuleReadError`
    naming the granule ``label``."""
    try:
        return read()
    except GranuleReadError:
        raise
    except READ_ERRORS as err:
        raise GranuleReadError(
            f"granule {label} cannot be read (truncated or corrupt?): {type(err).__name__}: {err}; download it again"
        ) from err


def read_sounding_file(
    source: Source,
    product: str | ProductSpec,
    read: Callable[[h5py.File, ProductSpec, str], xr.Dataset],
) -> xr.Dataset:
    """Open the sounding file ``source`` and return ``read(file, spec, label)`` (the standard observations
    Dataset); empty, truncated, corrupt or unreadable files raise :class:`GranuleReadError`."""
    spec = get_product(product)
    label = describe(source)

    def opened() -> xr.Dataset:
        with open_hdf5(source, label) as f:
            return read(f, spec, label)

    return read_errors_as_granule_errors(label, opened)


def variable(f: h5py.Group, path: str, label: str) -> h5py.Dataset:
    """The dataset at ``path`` or a GranuleReadError naming it."""
    obj = f.get(path)
    if not isinstance(obj, h5py.Dataset):
        raise GranuleReadError(
            f"granule {label} has no variable {path} (wrong product, or a truncated or unsupported file)"
        )
    return obj


def attr_text(value: Any) -> str:
    """An HDF5 attribute (bytes, str, array of either) as text."""
    if isinstance(value, np.ndarray):
        value = value.ravel()[0] if value.size else ""
    if isinstance(value, bytes | np.bytes_):
        return bytes(value).decode("utf-8", errors="replace").strip("\x00 ")
    return str(value).strip()


def read_float(ds: h5py.Dataset, *, missing: float | None = None) -> npt.NDArray[np.float32]:
    """A float variable with its ``missing_value``/``_FillValue`` (or ``missing``) → NaN, as float32."""
    raw = np.asarray(ds[()])
    out = raw.astype(np.float32)
    fills = [np.asarray(ds.attrs[k]).ravel() for k in ("missing_value", "_FillValue") if k in ds.attrs]
    if missing is not None:
        fills.append(np.array([missing]))
    for fill in fills:
        out[np.isin(raw, fill.astype(raw.dtype))] = np.nan
    out[~np.isfinite(out)] = np.nan
    return out


def read_seconds_since_1970(ds: h5py.Dataset) -> npt.NDArray[np.datetime64]:
    """A ``time`` variable in seconds since 1970-01-01 (float, UTC) as datetime64[us], rounded to 1 µs."""
    seconds = np.asarray(ds[()], dtype=np.float64)
    time: npt.NDArray[np.datetime64] = EPOCH_1970 + np.rint(seconds * 1e6).astype("timedelta64[us]")
    return time


def read_quality_flag(f: h5py.Group, spec: ProductSpec, label: str) -> npt.NDArray[np.int8]:
    """The product's quality flag (sounding,) as int8 (``xco2_quality_flag`` when the spec names none)."""
    flag: npt.NDArray[np.int8] = np.asarray(
        variable(f, spec.qa_flag_var or "xco2_quality_flag", label)[()]
    ).astype(np.int8)
    return flag


def read_sounding_id(f: h5py.Group, label: str) -> npt.NDArray[np.int64]:
    """The ``sounding_id`` variable (sounding,) as int64 (``YYYYMMDDhhmmssmf``)."""
    ids: npt.NDArray[np.int64] = np.asarray(variable(f, "sounding_id", label)[()]).astype(np.int64)
    return ids


def granule_stem(label: str) -> str:
    """The granule id of a file label: its file name without directory and extension."""
    return os.path.splitext(os.path.basename(label))[0]


def square_corners(
    lat: npt.NDArray[np.floating[Any]], lon: npt.NDArray[np.floating[Any]], side_km: float
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Corners (n, 4) of a square of ``side_km`` around each centre, counter-clockwise from south-west;
    for products that publish no footprint vertices (an equal-area stand-in for a circular footprint)."""
    half_lat = side_km / 2 / KM_PER_DEG_LAT
    coslat = np.maximum(np.cos(np.radians(np.clip(lat, -89.0, 89.0))), math.cos(math.radians(89.0)))
    half_lon = side_km / 2 / (KM_PER_DEG_LAT * coslat)
    dlat = np.array([-1.0, -1.0, 1.0, 1.0]) * half_lat
    dlon = np.array([-1.0, 1.0, 1.0, -1.0])
    lat_b = np.clip(lat[:, None] + dlat[None, :], -90.0, 90.0)
    lon_b = (lon[:, None] + dlon[None, :] * half_lon[:, None] + 180.0) % 360.0 - 180.0
    return lat_b.astype(np.float32), lon_b.astype(np.float32)


def observations(
    *,
    spec: ProductSpec,
    granule_id: str,
    value: npt.NDArray[np.float32],
    uncertainty: npt.NDArray[np.float32],
    flag: npt.NDArray[np.integer[Any]] | None,
    latitude: npt.NDArray[np.float32],
    longitude: npt.NDArray[np.float32],
    time: npt.NDArray[np.datetime64],
    sounding_id: npt.NDArray[np.int64],
    bounds: tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]] | None,
    value_source: str,
    attrs: Mapping[str, Any] | None = None,
) -> xr.Dataset:
    """The standard observations Dataset of one sounding file (see the module docstring). ``flag`` is the
    product's quality flag (None: every finite value is good); ``qa`` is 1 where it equals the good value."""
    n = value.shape[0]
    for what, arr in (("uncertainty", uncertainty), ("latitude", latitude), ("longitude", longitude)):
        if arr.shape != (n,):
            raise GranuleReadError(f"granule {granule_id}: {what} has shape {arr.shape}, value ({n},)")
    if flag is not None:
        good = spec.qa_flag_good if spec.qa_flag_good is not None else 0
        qa = np.where(flag == good, np.float32(1.0), np.float32(0.0)).astype(np.float32)
    else:
        qa = np.where(np.isfinite(value), np.float32(1.0), np.float32(0.0)).astype(np.float32)
    data: dict[str, Any] = {
        "value": (
            "pixel",
            value,
            {
                "units": spec.units,
                "long_name": spec.long_name,
                "standard_name": spec.standard_name,
                "source_variable": value_source,
            },
        ),
        "uncertainty": (
            "pixel",
            uncertainty,
            {
                "units": spec.units,
                "long_name": f"uncertainty (1-sigma) of {value_source.rsplit('/', 1)[-1]}",
                "source_variable": f"/{spec.precision_var}",
            },
        ),
        "qa": (
            "pixel",
            qa,
            {
                "units": "1",
                "long_name": "quality: 1 good, 0 bad (from the product's quality flag)",
                "qa_threshold": spec.qa_threshold,
                "quality_rule": spec.quality_document,
            },
        ),
        "latitude": ("pixel", latitude, {"units": "degrees_north", "standard_name": "latitude"}),
        "longitude": ("pixel", longitude, {"units": "degrees_east", "standard_name": "longitude"}),
        "time": ("pixel", time.astype("datetime64[ns]"), {"long_name": "time of the sounding (UTC)"}),
    }
    if flag is not None:
        data["quality_flag"] = (
            "pixel",
            flag,
            {"long_name": f"/{spec.qa_flag_var}", "flag_good": spec.qa_flag_good},
        )
    if bounds is not None:
        lat_b, lon_b = bounds
        if lat_b.shape != (n, 4) or lon_b.shape != (n, 4):
            raise GranuleReadError(
                f"granule {granule_id}: footprint vertices have shape {lat_b.shape}, not ({n}, 4)"
            )
        data["latitude_bounds"] = (("pixel", "corner"), lat_b, {"units": "degrees_north"})
        data["longitude_bounds"] = (("pixel", "corner"), lon_b, {"units": "degrees_east"})
    return xr.Dataset(
        data,
        coords={"sounding_id": ("pixel", sounding_id, {"long_name": "sounding id (YYYYMMDDhhmmssmf)"})},
        attrs={**observations_attrs(spec, granule_id, value_source), **(attrs or {})},
    )


def observations_attrs(spec: ProductSpec, granule_id: str, value_variable: str) -> dict[str, Any]:
    """The global attributes every observations Dataset starts with (S5P and sounding files alike)."""
    return {
        "granule_id": granule_id,
        "product": spec.name,
        "product_type": spec.product_type,
        "units": spec.units,
        "qa_threshold": spec.qa_threshold,
        "value_variable": value_variable,
    }


def sounding_ids(
    time: npt.NDArray[np.datetime64], footprint: npt.NDArray[np.integer[Any]]
) -> npt.NDArray[np.int64]:
    """OCO-style sounding ids ``YYYYMMDDhhmmssmf`` (m: tenth of a second, f: footprint 1–8) from times and
    footprint numbers."""
    t = time.astype("datetime64[ms]")
    seconds = t.astype("datetime64[s]")
    text = np.datetime_as_string(seconds, unit="s")
    digits = np.char.replace(np.char.replace(np.char.replace(text, "-", ""), "T", ""), ":", "").astype(
        np.int64
    )
    tenth = ((t - seconds).astype(np.int64) // 100).astype(np.int64)
    ids: npt.NDArray[np.int64] = (
        digits * 100 + tenth * 10 + np.asarray(footprint, dtype=np.int64) % 10
    ).astype(np.int64)
    return ids
