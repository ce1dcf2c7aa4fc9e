"""The simulator's observation models: what TROPOMI would report for a known column field, and what the XCO2
sounders (OCO-2, OCO-3, GOSAT, TanSat) would report for a known XCO2 field.

Given a true tropospheric NO2 field on a grid (mol m-2, dims (lat, lon)) and a swath, each pixel reports the
field at its centre plus Gaussian noise of the stated precision; a smooth daily cloud field lowers ``qa_value``
below the NO2 threshold over roughly ``cloud_fraction`` of the scene; a small share of pixels are retrieval
failures (fill values). Deterministic for a given seed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from transforms.grid import GridSpec
from transforms.swath import OrbitModel, Swath


@dataclass(frozen=True)
class ObservationModel:
    """Noise, cloud and failure statistics of the simulated retrieval."""

    precision: float = 1.0e-5  # mol m-2, 1σ per pixel (≈ 0.6e15 molec cm-2)
    cloud_fraction: float = 0.3  # share of the scene with qa_value below 0.75
    failure_fraction: float = 0.02  # share of pixels with fill values
    cloud_scale_deg: float = 1.5  # typical size of a cloud system


@dataclass(frozen=True)
class PixelValues:
    """Simulated L2 values, dims (scanline, ground_pixel): column and precision in mol m-2 (NaN = fill),
    qa_value in 0..1."""

    value: np.ndarray
    precision: np.ndarray
    qa_value: np.ndarray


def cloud_field(grid: GridSpec, *, rng: np.random.Generator, scale_deg: float) -> np.ndarray:
    """A smooth random field in [0, 1] on ``grid`` (dims (lat, lon)) made of Gaussian blobs of ``scale_deg``."""
    lat, lon = grid.lat(), grid.lon()
    west, south, east, north = grid.bounds
    area = (east - west) * (north - south)
    n_blobs = max(4, int(area / (scale_deg * scale_deg) * 0.6))
    field = np.zeros(grid.shape)
    clat = rng.uniform(south, north, n_blobs)
    clon = rng.uniform(west, east, n_blobs)
    width = rng.uniform(0.5, 1.5, n_blobs) * scale_deg
    for la, lo, w in zip(clat, clon, width, strict=True):
        gy = np.exp(-0.5 * ((lat - la) / w) ** 2)
        gx = np.exp(-0.5 * ((lon - lo) / w) ** 2)
        field += gy[:, None] * gx[None, :]
    top = field.max()
    return field / top if top > 0 else field


def _sample(
    field: np.ndarray,
    grid: GridSpec,
    latitude: np.ndarray,
    longitude: np.ndarray,
    background: float,
    clouds: np.ndarray,
    model: ObservationModel | XCO2Model,
) -> tuple[np.ndarray, np.ndarray]:
    """``field`` and ``clouds`` (dims (lat, lon) on ``grid``) at the centres (degrees, any shape): the truth
    (``background`` outside ``grid``) and whether each centre is cloudy (its cloud above the
    ``1 − model.cloud_fraction`` quantile of the scene); both with the centres' shape."""
    idx = grid.cell_index(latitude, longitude)
    inside = idx >= 0
    truth = np.full(latitude.shape, background)
    truth[inside] = field.reshape(-1)[idx[inside]]
    cloud = np.zeros(latitude.shape)
    cloud[inside] = clouds.reshape(-1)[idx[inside]]
    cloud_fraction = model.cloud_fraction
    threshold = np.quantile(clouds, 1.0 - cloud_fraction) if cloud_fraction > 0 else np.inf
    return truth, cloud > threshold


def _noisy(
    truth: np.ndarray,
    cloudy: np.ndarray,
    model: ObservationModel | XCO2Model,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Retrieved values (truth + Gaussian noise), their 1σ (``model.precision``, doubled where cloudy) and the
    failed retrievals (a ``model.failure_fraction`` share, values and 1σ NaN); dims and units as ``truth``.
    Draws the noise, then the failures, from ``rng``."""
    sigma = np.full(truth.shape, model.precision) * np.where(cloudy, 2.0, 1.0)
    value = truth + rng.normal(0.0, 1.0, size=truth.shape) * sigma
    failed = rng.random(truth.shape) < model.failure_fraction
    value[failed] = np.nan
    sigma[failed] = np.nan
    return value, sigma, failed


def observe(
    field: np.ndarray,
    grid: GridSpec,
    swath: Swath,
    *,
    background: float,
    clouds: np.ndarray,
    model: ObservationModel,
    rng: np.random.Generator,
) -> PixelValues:
    """Sample ``field`` (mol m-2, dims (lat, lon) on ``grid``) at the swath's pixel centres, with noise,
    cloud-lowered QA and fill values. Pixels outside ``grid`` see ``background``."""
    shape = swath.latitude.shape
    truth, cloudy = _sample(field, grid, swath.latitude, swath.longitude, background, clouds, model)
    qa = np.where(
        cloudy, rng.choice([0.4, 0.5, 0.61, 0.74], size=shape), rng.choice([0.77, 0.88, 1.0], size=shape)
    )
    value, precision, failed = _noisy(truth, cloudy, model, rng)
    qa[failed] = 0.0
    return PixelValues(value=value, precision=precision, qa_value=qa)


# ---------------------------------------------------------------------------------------------- XCO2

XCO2_BACKGROUND_PPM = 410.0
XCO2_PPM_PER_NO2_MOL_M2 = 2.0e4
"""Illustrative: an NO2 enhancement of 1e-4 mol m-2 (a large city) comes with ~2 ppm of XCO2. The XCO2
truth is ``XCO2_BACKGROUND_PPM + XCO2_PPM_PER_NO2_MOL_M2 × (NO2 − background)``, an OSSE stand-in, not a
transport model."""


@dataclass(frozen=True)
class XCO2Model:
    """Noise, cloud and failure statistics of a simulated XCO2 retrieval (ppm)."""

    precision: float = 0.5  # 1σ per sounding
    cloud_fraction: float = 0.3  # share of the scene flagged bad (xco2_quality_flag = 1)
    failure_fraction: float = 0.02  # share of soundings with a missing value
    cloud_scale_deg: float = 1.5


XCO2_MODELS: dict[str, XCO2Model] = {
    "oco2-xco2": XCO2Model(precision=0.5),
    "oco3-xco2": XCO2Model(precision=0.6),
    "acos-xco2": XCO2Model(precision=1.5),
    "gosat-xco2": XCO2Model(precision=2.0),
    "tansat-xco2": XCO2Model(precision=1.5),
}
"""Per-product precisions, of the order the products' documents give (OCO-2 ~0.5 ppm, GOSAT ~2 ppm)."""

_GOSAT_ORBIT = OrbitModel(
    inclination=98.06,
    period_s=100.0 * 60,
    node_local_time_h=13.0,
    swath_km=790.0,
    ground_pixels=3,
    scanline_km=283.0,
    ref_orbit=60000,
    ref_orbit_start=dt.datetime(2020, 12, 1, 0, 40, tzinfo=dt.UTC),
)
"""GOSAT: 13:00 node, 3 cross-track points ~263 km apart, ~283 km along track, 10.5 km footprints."""

SOUNDING_ORBITS: dict[str, OrbitModel] = {
    # sun-synchronous, 13:36 node, 8 footprints over ~10 km, 3 frames a second (~2.25 km along track)
    "oco2-xco2": OrbitModel(
        inclination=98.2,
        period_s=98.8 * 60,
        node_local_time_h=13.6,
        swath_km=10.3,
        ground_pixels=8,
        scanline_km=2.25,
        ref_orbit=34000,
        ref_orbit_start=dt.datetime(2020, 12, 1, 0, 20, tzinfo=dt.UTC),
    ),
    # ISS: 51.6° inclination (precessing node modelled as a fixed local time: an OSSE simplification)
    "oco3-xco2": OrbitModel(
        inclination=51.6,
        period_s=92.9 * 60,
        node_local_time_h=12.0,
        swath_km=13.0,
        ground_pixels=8,
        scanline_km=2.2,
        ref_orbit=8000,
        ref_orbit_start=dt.datetime(2020, 12, 1, 0, 5, tzinfo=dt.UTC),
    ),
    "acos-xco2": _GOSAT_ORBIT,  # ACOS and NIES retrieve from the same GOSAT soundings
    "gosat-xco2": _GOSAT_ORBIT,
    # TanSat: 9 footprints of 2 × 2 km over ~18 km
    "tansat-xco2": OrbitModel(
        inclination=98.2,
        period_s=98.8 * 60,
        node_local_time_h=13.5,
        swath_km=18.0,
        ground_pixels=9,
        scanline_km=2.0,
        ref_orbit=3000,
        ref_orbit_start=dt.datetime(2017, 3, 1, 0, 30, tzinfo=dt.UTC),
    ),
}
"""Sounding geometry of each XCO2 product for the simulator (the S5P swath model with narrow swaths)."""


@dataclass(frozen=True)
class SoundingValues:
    """Simulated soundings, dims (sounding,): xco2 and uncertainty in ppm (NaN = missing), flag 0 good / 1 bad."""

    xco2: np.ndarray
    uncertainty: np.ndarray
    flag: np.ndarray


def xco2_field(no2_field: np.ndarray, *, no2_background: float) -> np.ndarray:
    """The XCO2 truth (ppm, dims as ``no2_field``) from the NO2 truth (mol m-2); see XCO2_PPM_PER_NO2_MOL_M2."""
    return XCO2_BACKGROUND_PPM + XCO2_PPM_PER_NO2_MOL_M2 * np.maximum(no2_field - no2_background, 0.0)


def observe_soundings(
    field: np.ndarray,
    grid: GridSpec,
    latitude: np.ndarray,
    longitude: np.ndarray,
    *,
    clouds: np.ndarray,
    model: XCO2Model,
    rng: np.random.Generator,
) -> SoundingValues:
    """Sample the XCO2 ``field`` (ppm, dims (lat, lon) on ``grid``) at sounding centres (1-D, degrees): noise of
    the model's precision, ``xco2_quality_flag`` 1 under clouds (twice the noise), missing values for failures.
    Soundings outside ``grid`` see the background."""
    truth, cloudy = _sample(field, grid, latitude, longitude, XCO2_BACKGROUND_PPM, clouds, model)
    xco2, uncertainty, failed = _noisy(truth, cloudy, model, rng)
    flag = np.where(cloudy | failed, 1, 0).astype(np.int8)
    return SoundingValues(xco2=xco2, uncertainty=uncertainty, flag=flag)
