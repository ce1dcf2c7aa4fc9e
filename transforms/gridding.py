"""Bin swath observations onto a regular lat/lon grid.

Input is a standard observations Dataset (dim ``pixel``; variables ``value``, ``uncertainty``, ``qa``,
``latitude``, ``longitude``, ``time``) as returned by the product readers. Output is one day's L3 fields on a
:class:`~transforms.grid.GridSpec`: dims ``(lat, lon)``, with ``mean`` (value units), ``count`` (pixels),
``uncertainty`` (value units, 1σ of the mean) and ``weight`` (sum of weights). Cells with no valid pixel are NaN
(and count 0), never zero.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Literal

import numpy as np
import xarray as xr

from transforms.grid import GridSpec

Weighting = Literal["plain", "inverse_variance"]


def mask_observations(obs: xr.Dataset, *, qa_threshold: float) -> xr.Dataset:
    """Keep pixels with a finite value, finite geolocation and ``qa > qa_threshold``. dims (pixel,)."""
    keep = (
        np.isfinite(obs["value"].values)
        & np.isfinite(obs["latitude"].values)
        & np.isfinite(obs["longitude"].values)
        & (obs["qa"].values > qa_threshold)
    )
    if "uncertainty" in obs:
        unc = obs["uncertainty"].values
        keep &= np.isfinite(unc) & (unc > 0)
    return obs.isel(pixel=np.flatnonzero(keep))


def select_day(obs: xr.Dataset, day: np.datetime64 | dt.date) -> xr.Dataset:
    """Pixels whose UTC time falls on ``day``. dims (pixel,)."""
    t = obs["time"].values.astype("datetime64[D]")
    return obs.isel(pixel=np.flatnonzero(t == np.asarray(day).astype("datetime64[D]")))


def bin_centres(
    obs: xr.Dataset | Sequence[xr.Dataset],
    grid: GridSpec,
    *,
    weighting: Weighting = "inverse_variance",
) -> xr.Dataset:
    """Average observations into the cells that contain their pixel centres.

    obs: one or more masked observation Datasets, dims (pixel,), with ``value``, ``uncertainty`` (same units,
    1σ, > 0), ``latitude``, ``longitude`` (degrees). Weights are 1 (``plain``) or 1/σ² (``inverse_variance``).
    Returns dims (lat, lon): ``mean`` = Σwv/Σw; ``uncertainty`` = sqrt(Σw²σ²)/Σw (the propagated 1σ of the
    weighted mean of independent pixels; equals 1/sqrt(Σw) for inverse-variance weights); ``count``; ``weight`` = Σw.
    """
    parts = [obs] if isinstance(obs, xr.Dataset) else list(obs)
    n_lat, n_lon = grid.shape
    size = n_lat * n_lon
    sw = np.zeros(size)
    swv = np.zeros(size)
    sw2s2 = np.zeros(size)
    count = np.zeros(size, dtype=np.int64)
    for part in parts:
        if part.sizes.get("pixel", 0) == 0:
            continue
        value = np.asarray(part["value"].values, dtype=np.float64)
        sigma = np.asarray(part["uncertainty"].values, dtype=np.float64)
        idx = grid.cell_index(part["latitude"].values, part["longitude"].values)
        ok = idx >= 0
        idx, value, sigma = idx[ok], value[ok], sigma[ok]
        w = 1.0 / (sigma * sigma) if weighting == "inverse_variance" else np.ones_like(value)
        sw += np.bincount(idx, weights=w, minlength=size)
        swv += np.bincount(idx, weights=w * value, minlength=size)
        sw2s2 += np.bincount(idx, weights=w * w * sigma * sigma, minlength=size)
        count += np.bincount(idx, minlength=size)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, swv / sw, np.nan)
        unc = np.where(count > 0, np.sqrt(sw2s2) / sw, np.nan)
    shape = (n_lat, n_lon)
    coords = {"lat": grid.lat(), "lon": grid.lon()}
    return xr.Dataset(
        {
            "mean": (("lat", "lon"), mean.reshape(shape).astype(np.float32)),
            "uncertainty": (("lat", "lon"), unc.reshape(shape).astype(np.float32)),
            "count": (("lat", "lon"), count.reshape(shape).astype(np.int32)),
            "weight": (("lat", "lon"), np.where(count > 0, sw, np.nan).reshape(shape).astype(np.float32)),
        },
        coords=coords,
        attrs={"weighting": weighting, "binning": "pixel_centre"},
    )
