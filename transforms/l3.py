"""From a day's granule files to that day's L3 fields: read, mask fills and QA, keep the day's pixels, bin.

Files are handed in already opened (any binary file-like); nothing here knows where they live. Files are
binned one at a time into a :class:`~transforms.gridding.GridAccumulator`, so memory holds one granule and
the grid's sums, never the whole day.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
import xarray as xr

from transforms.grid import GridSpec
from transforms.gridding import (
    GridAccumulator,
    Method,
    QualityRule,
    Weighting,
    day_mask,
    observation_mask,
    quality_rule,
)
from transforms.products import ProductSpec
from transforms.s5p import open_observations


@dataclass(frozen=True)
class DayStats:
    """What went into one gridded day."""

    pixels_read: int
    pixels_used: int  # after fill/QA masking, on this day and inside the grid
    observed_cells: int
    coverage: float  # observed cells / grid cells


def grid_granules(
    files: Iterable[BinaryIO],
    *,
    day: dt.date,
    grid: GridSpec,
    product: ProductSpec,
    method: Method = "centre",
    weighting: Weighting = "inverse_variance",
    qa_threshold: float | None = None,
) -> tuple[xr.Dataset, DayStats]:
    """Grid the pixels of ``day`` (UTC) from all ``files`` onto ``grid``.

    Returns fields with dims (lat, lon) — ``mean``, ``uncertainty``, ``count``, ``weight`` — and their stats.
    Pixels with fill values, failing the product's quality rule (or ``qa <= qa_threshold`` when given) or
    outside the day are dropped. ``method``: ``centre`` or ``footprint`` (area-weighted corner polygons).
    """
    rule = QualityRule(qa_above=qa_threshold) if qa_threshold is not None else quality_rule(product)
    acc = GridAccumulator(grid, method=method, weighting=weighting)
    read = 0
    corners = method == "footprint"
    for f in files:
        obs = open_observations(f, product=product, corners=corners)  # lean read for centre binning
        read += obs.sizes["pixel"]
        keep = np.flatnonzero(observation_mask(obs, rule=rule) & day_mask(obs, day))
        acc.add_arrays(
            value=obs["value"].values[keep],
            uncertainty=obs["uncertainty"].values[keep],
            latitude=obs["latitude"].values[keep],
            longitude=obs["longitude"].values[keep],
            latitude_bounds=obs["latitude_bounds"].values[keep] if corners else None,
            longitude_bounds=obs["longitude_bounds"].values[keep] if corners else None,
        )
    fields = acc.fields()
    observed = int((fields["count"].values > 0).sum())
    stats = DayStats(
        pixels_read=read,
        pixels_used=acc.pixels,
        observed_cells=observed,
        coverage=observed / fields["count"].size,
    )
    return fields, stats
