"""The simulator's observation model: what TROPOMI would report for a known column field.

Given a true tropospheric NO2 field on a grid (mol m-2, dims (lat, lon)) and a swath, each pixel reports the
field at its centre plus Gaussian noise of the stated precision; a smooth daily cloud field lowers ``qa_value``
below the NO2 threshold over roughly ``cloud_fraction`` of the scene; a small share of pixels are retrieval
failures (fill values). Deterministic for a given seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from transforms.grid import GridSpec
from transforms.swath import Swath


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
    idx = grid.cell_index(swath.latitude, swath.longitude)
    inside = idx >= 0
    flat = field.reshape(-1)
    truth = np.full(shape, background)
    truth[inside] = flat[idx[inside]]
    cloud = np.zeros(shape)
    cloud[inside] = clouds.reshape(-1)[idx[inside]]
    threshold = np.quantile(clouds, 1.0 - model.cloud_fraction) if model.cloud_fraction > 0 else np.inf
    cloudy = cloud > threshold
    qa = np.where(
        cloudy, rng.choice([0.4, 0.5, 0.61, 0.74], size=shape), rng.choice([0.77, 0.88, 1.0], size=shape)
    )
    precision = np.full(shape, model.precision) * np.where(cloudy, 2.0, 1.0)
    value = truth + rng.normal(0.0, 1.0, size=shape) * precision
    failed = rng.random(shape) < model.failure_fraction
    value[failed] = np.nan
    precision[failed] = np.nan
    qa[failed] = 0.0
    return PixelValues(value=value, precision=precision, qa_value=qa)
