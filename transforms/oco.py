"""OCO-2 / OCO-3 / ACOS-GOSAT Lite FP daily files (flat netCDF4), both directions.

:func:`open_lite_observations` is the reader (a file in, the standard observations Dataset out, reading only
``latitude``, ``longitude``, ``time``, ``sounding_id``, ``xco2``, ``xco2_uncertainty``, ``xco2_quality_flag``
and, for footprint binning, ``vertex_latitude``/``vertex_longitude``). :func:`write_lite` writes a file with
the real layout, for the simulator and tests.

Layout (verified against GES DISC's OPeNDAP descriptions of ACOS Lite 7.3 and the formats note for OCO-2
Lite v11: root arrays on dimension ``sounding_id``, ``missing_value`` −999999, ``BuildId`` global attribute,
groups ``Retrieval``/``Sounding``/``Meteorology``)::

    /  global attrs: title, BuildId, Platform, Sensor, creation_date, bias-correction descriptions
       dims sounding_id, levels=20, vertices=4 (OCO-2/OCO-3 only; ACOS has no vertex arrays)
       sounding_id (int64 YYYYMMDDhhmmssmf), time (f8, seconds since 1970-01-01), latitude, longitude,
       vertex_latitude, vertex_longitude (sounding_id, vertices), xco2, xco2_uncertainty, xco2_apriori (ppm),
       xco2_quality_flag (int8, 0 = good), solar_zenith_angle, sensor_zenith_angle,
       pressure_levels, co2_profile_apriori, xco2_averaging_kernel, pressure_weight (sounding_id, levels)
    /Retrieval     psurf (hPa), ...      /Sounding  operation_mode (0 nadir, 1 glint, 2 target, 3 SAM), orbit,
                                                    footprint (1–8)
    /Meteorology   psurf_apriori, windspeed_u_met, windspeed_v_met

Assumed (not verified on a v11 file): the exact ``BuildId`` spelling for OCO-2 (``B11.0.14A`` by analogy with
ACOS's ``B7.3.10A`` for file build ``B7310A``), that float variables carry ``_FillValue`` as well as
``missing_value``, the vertex order (counter-clockwise corners), and the Sounding/Meteorology member names
beyond ``operation_mode`` and ``orbit``.
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

LEVELS = 20
TITLES = {"oco2": "OCO-2 L2 Lite Output", "oco3": "OCO-3 L2 Lite Output", "acos": "ACOS L2 Lite Output"}
PLATFORMS = {"oco2": ("OCO-2", "OCO-2"), "oco3": ("ISS", "OCO-3"), "acos": ("GOSAT", "TANSO-FTS")}
OPERATION_MODES = {"nadir": 0, "glint": 1, "target": 2, "sam": 3}


def build_id(build: str) -> str:
    """The ``BuildId`` attribute of a file build: ``B7310A`` → ``B7.3.10A`` (verified for ACOS);
    ``B11014A`` → ``B11.0.14A`` (assumed by analogy)."""
    digits = "".join(c for c in build if c.isdigit())
    suffix = build[1 + len(digits) :]
    if len(digits) < 4:
        return build
    return f"B{int(digits[:-3])}.{digits[-3]}.{digits[-2:]}{suffix}"


def _text(value: str) -> np.bytes_:
    return np.bytes_(value.encode("utf-8"))


def _f32(name: str, value: npt.ArrayLike | None, n: int, default: float) -> npt.NDArray[np.float32]:
    if value is None:
        return np.full(n, default, dtype=np.float32)
    arr = np.asarray(value, dtype=np.float32)
    if arr.shape != (n,):
        raise InputError(f"{name} must have shape ({n},) (sounding,), got {arr.shape}")
    return arr


def _filled(arr: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    return np.where(np.isfinite(arr), arr, np.float32(LITE_MISSING)).astype(np.float32)


def write_lite(
    target: str | os.PathLike[str] | IO[bytes],
    *,
    name: GranuleName,
    time: npt.ArrayLike,
    latitude: npt.ArrayLike,
    longitude: npt.ArrayLike,
    xco2: npt.ArrayLike,
    xco2_uncertainty: npt.ArrayLike,
    xco2_quality_flag: npt.ArrayLike,
    vertex_latitude: npt.ArrayLike | None = None,
    vertex_longitude: npt.ArrayLike | None = None,
    footprint: npt.ArrayLike | None = None,
    operation_mode: str = "nadir",
    orbit: int = 0,
    psurf: npt.ArrayLike | None = None,
    extra_attrs: dict[str, str] | None = None,
) -> None:
    """Write one Lite FP daily file of ``name`` (an ``oco_lite`` granule name) with the real layout.

    Arrays are (sounding,): time (datetime64 or datetime-like, UTC), latitude/longitude (degrees), xco2 and
    xco2_uncertainty (ppm, NaN = missing), xco2_quality_flag (0 good, 1 bad); vertex_latitude/longitude
    (sounding, 4), required for OCO-2/OCO-3 and refused for ACOS (its files have none); footprint 1–8.
    """
    if name.family != "oco_lite":
        raise InputError(f"write_lite writes OCO/ACOS Lite files, not {name.product} ({name.filename})")
    mission = name.id.split("_", 1)[0]
    lat = np.asarray(latitude, dtype=np.float32)
    if lat.ndim != 1:
        raise InputError(f"latitude must be 1-D (sounding,), got shape {lat.shape}")
    n = lat.shape[0]
    lon = _f32("longitude", longitude, n, 0.0)
    value = _f32("xco2", xco2, n, np.nan)
    unc = _f32("xco2_uncertainty", xco2_uncertainty, n, np.nan)
    flag = np.asarray(xco2_quality_flag, dtype=np.int8)
    times = np.asarray(time, dtype="datetime64[ns]")
    if flag.shape != (n,) or times.shape != (n,):
        raise InputError(
            f"xco2_quality_flag and time must have shape ({n},), got {flag.shape}, {times.shape}"
        )
    has_vertices = mission != "acos"
    if has_vertices and (vertex_latitude is None or vertex_longitude is None):
        raise InputError(
            f"{mission} Lite files carry vertex_latitude/vertex_longitude (sounding, 4): pass them"
        )
    if not has_vertices and vertex_latitude is not None:
        raise InputError("ACOS Lite files have no footprint vertices: leave vertex_latitude unset")
    fp = np.asarray(footprint, dtype=np.int8) if footprint is not None else np.ones(n, dtype=np.int8)
    seconds = (times - EPOCH_1970).astype("timedelta64[ns]").astype(np.float64) / 1e9
    ids = sounding_ids(times, fp)
    psurf_arr = _f32("psurf", psurf, n, 1000.0)
    gz: dict[str, Any] = {"compression": "gzip", "compression_opts": 4, "shuffle": True}
    fill = np.float32(LITE_MISSING)
    platform, sensor = PLATFORMS[mission]

    def put(group: Any, var: str, dims: tuple[str, ...], data: Any, attrs: dict[str, Any]) -> None:
        kwargs: dict[str, Any] = dict(gz) if data.ndim and data.size else {}
        if data.dtype == np.float32:
            kwargs["fillvalue"] = fill
            attrs = {**attrs, "missing_value": fill}
        v = group.create_variable(var, dims, data.dtype, data=data, **kwargs)
        for key, val in attrs.items():
            v.attrs[key] = _text(val) if isinstance(val, str) else val

    with h5netcdf.File(target, "w") as f:
        attrs = {
            "title": TITLES[mission],
            "BuildId": build_id(name.processor_version),
            "Platform": platform,
            "Sensor": sensor,
            "creation_date": f"{name.production_time:%b %Y}",
            "filter_function": f"{mission}_l2_filter",
            "bc_function": f"bias_correct_{mission}",
            "Bias_Correction_land": "XCO2_Bias_Corrected = XCO2_Raw + footprint, parametric and scaling terms "
            "(see the data user's guide)",
            "history": "",
            **(extra_attrs or {}),
        }
        for key, val in attrs.items():
            f.attrs[key] = _text(val)
        f.dimensions = {"sounding_id": n, "levels": LEVELS, "epoch_dimension": 7}
        if has_vertices:
            f.dimensions["vertices"] = 4
        put(
            f,
            "sounding_id",
            ("sounding_id",),
            ids,
            {"long_name": "Sounding ID", "comment": "YYYYMMDDhhmmssmf"},
        )
        put(
            f,
            "time",
            ("sounding_id",),
            seconds,
            {"units": "seconds since 1970-01-01 00:00:00", "long_name": "Time", "standard_name": "time"},
        )
        for var, arr, units in (("latitude", lat, "degrees_north"), ("longitude", lon, "degrees_east")):
            put(
                f,
                var,
                ("sounding_id",),
                arr,
                {"units": units, "long_name": var.title(), "standard_name": var},
            )
        if has_vertices:
            lat_v = np.asarray(vertex_latitude, dtype=np.float32)
            lon_v = np.asarray(vertex_longitude, dtype=np.float32)
            if lat_v.shape != (n, 4) or lon_v.shape != (n, 4):
                raise InputError(f"vertex_latitude/longitude must have shape ({n}, 4), got {lat_v.shape}")
            for var, arr, units in (
                ("vertex_latitude", lat_v, "degrees_north"),
                ("vertex_longitude", lon_v, "degrees_east"),
            ):
                put(
                    f,
                    var,
                    ("sounding_id", "vertices"),
                    _filled(arr),
                    {"units": units, "long_name": f"{var.split('_')[1].title()} of footprint corners"},
                )
        put(
            f,
            "xco2",
            ("sounding_id",),
            _filled(value),
            {
                "units": "ppm",
                "long_name": "Column-averaged dry-air mole fraction of CO2 (includes bias correction)",
            },
        )
        put(
            f,
            "xco2_uncertainty",
            ("sounding_id",),
            _filled(unc),
            {"units": "ppm", "long_name": "XCO2 posterior error estimate"},
        )
        put(
            f,
            "xco2_apriori",
            ("sounding_id",),
            np.full(n, 410.0, dtype=np.float32),
            {"units": "ppm", "long_name": "A priori XCO2 value"},
        )
        put(
            f,
            "xco2_quality_flag",
            ("sounding_id",),
            flag,
            {
                "units": "none",
                "long_name": "XCO2 quality flag",
                "comment": "0=Good, 1=Bad",
                "missing_value": np.int8(-99),
            },
        )
        for var in ("solar_zenith_angle", "sensor_zenith_angle"):
            put(
                f,
                var,
                ("sounding_id",),
                np.full(n, 35.0 if var.startswith("solar") else 5.0, dtype=np.float32),
                {"units": "degrees"},
            )
        levels = np.linspace(0.1, 1.0, LEVELS, dtype=np.float32)
        for var, row, units in (
            ("pressure_levels", levels * 1000, "hPa"),
            ("co2_profile_apriori", np.full(LEVELS, 410.0, dtype=np.float32), "ppm"),
            ("xco2_averaging_kernel", np.ones(LEVELS, dtype=np.float32), "none"),
            ("pressure_weight", np.full(LEVELS, 1 / LEVELS, dtype=np.float32), "none"),
        ):
            put(
                f,
                var,
                ("sounding_id", "levels"),
                np.broadcast_to(row, (n, LEVELS)).astype(np.float32),
                {"units": units},
            )
        retrieval = f.create_group("Retrieval")
        put(
            retrieval,
            "psurf",
            ("sounding_id",),
            _filled(psurf_arr),
            {"units": "hPa", "long_name": "Retrieved surface pressure"},
        )
        sounding = f.create_group("Sounding")
        put(
            sounding,
            "operation_mode",
            ("sounding_id",),
            np.full(n, OPERATION_MODES[operation_mode], dtype=np.int8),
            {
                "long_name": "Operation mode",
                "comment": "0=Nadir, 1=Glint, 2=Target, 3=SAM (OCO-3), 4=Transition",
            },
        )
        put(
            sounding,
            "orbit",
            ("sounding_id",),
            np.full(n, orbit, dtype=np.int32),
            {"long_name": "Orbit number"},
        )
        put(sounding, "footprint", ("sounding_id",), fp, {"long_name": "Footprint (1-8)"})
        met = f.create_group("Meteorology")
        put(met, "psurf_apriori", ("sounding_id",), _filled(psurf_arr), {"units": "hPa"})
        for var in ("windspeed_u_met", "windspeed_v_met"):
            put(met, var, ("sounding_id",), np.full(n, 3.0, dtype=np.float32), {"units": "m/s"})


def open_lite_observations(source: Source, *, product: str | ProductSpec, corners: bool = True) -> xr.Dataset:
    """Read a Lite FP daily file into the standard observations Dataset (dim ``pixel`` = sounding).

    ``value`` is ``xco2`` (ppm, bias-corrected), ``uncertainty`` ``xco2_uncertainty``, ``qa`` 1 where
    ``xco2_quality_flag == 0``; ``corners``: footprint corners from ``vertex_latitude/longitude`` (ACOS:
    squares of the product's nominal footprint). Raises :class:`GranuleReadError` for empty, truncated,
    corrupt or other-mission files.
    """
    return read_sounding_file(source, product, lambda f, spec, label: _read(f, spec, label, corners=corners))


def _read(f: h5py.File, spec: ProductSpec, label: str, *, corners: bool) -> xr.Dataset:
    title = attr_text(f.attrs.get("title", ""))
    expected = TITLES.get(spec.mission, "")
    if title and title != expected:
        found = next((f"{m}-xco2" for m, t in TITLES.items() if t == title), None)
        hint = f"; open it with product={found!r}" if found else ""
        raise GranuleReadError(
            f"product mismatch: granule {label} is an {title!r} file, not {spec.name}{hint}"
        )
    lat = read_float(variable(f, "latitude", label))
    lon = read_float(variable(f, "longitude", label))
    value = read_float(variable(f, spec.value_var, label))
    unc = read_float(variable(f, spec.precision_var, label))
    flag = read_quality_flag(f, spec, label)
    time = read_seconds_since_1970(variable(f, "time", label))
    ids = read_sounding_id(f, label)
    bounds = None
    if corners:
        if isinstance(f.get("vertex_latitude"), h5py.Dataset):
            lat_b = read_float(variable(f, "vertex_latitude", label))
            lon_b = read_float(variable(f, "vertex_longitude", label))
            bounds = (lat_b, lon_b)
        elif spec.footprint_km is not None:
            bounds = square_corners(lat, lon, spec.footprint_km)
        else:
            raise GranuleReadError(
                f"granule {label} has no vertex_latitude/vertex_longitude (footprint corners)"
            )
    granule_id = granule_stem(label)
    return observations(
        spec=spec,
        granule_id=granule_id,
        value=value,
        uncertainty=unc,
        flag=flag,
        latitude=lat,
        longitude=lon,
        time=time,
        sounding_id=ids,
        bounds=bounds,
        value_source=f"/{spec.value_var}",
        attrs={"build_id": attr_text(f.attrs.get("BuildId", ""))},
    )
