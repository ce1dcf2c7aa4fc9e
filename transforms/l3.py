"""From a day's granule files to that day's L3 fields: read, mask fills and QA, keep the day's pixels, bin.

Files are handed in already opened (any binary file-like); nothing here knows where they live.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import BinaryIO

import xarray as xr

from transforms.grid import GridSpec
from transforms.gridding import Weighting, bin_centres, mask_observations, select_day
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
    weighting: Weighting = "inverse_variance",
    qa_threshold: float | None = None,
) -> tuple[xr.Dataset, DayStats]:
    """Grid the pixels of ``day`` (UTC) from all ``files`` onto ``grid``.

    Returns fields with dims (lat, lon) — ``mean``, ``uncertainty``, ``count``, ``weight`` — and their stats.
    Pixels with fill values, ``qa <= qa_threshold`` (default: the product's rule) or outside the day are dropped.
    """
    threshold = product.qa_threshold if qa_threshold is None else qa_threshold
    parts = []
    read = 0
    for f in files:
        obs = open_observations(f, product=product)
        read += obs.sizes["pixel"]
        obs = select_day(mask_observations(obs, qa_threshold=threshold), day)
        parts.append(obs.load())
    fields = bin_centres(parts, grid, weighting=weighting)
    count = fields["count"].values
    observed = int((count > 0).sum())
    stats = DayStats(
        pixels_read=read,
        pixels_used=int(count.sum()),
        observed_cells=observed,
        coverage=observed / count.size,
    )
    return fields, stats
