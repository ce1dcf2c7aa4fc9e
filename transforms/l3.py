"""From a day's S5P granule files to that day's L3 fields: read, mask fills and QA, keep the day's pixels, bin
(other product families: :func:`transforms.observations.grid_granules`, which routes S5P here).

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
from transforms.gridding import GridAccumulator, Method, QualityRule, Weighting, pixel_mask, quality_rule
from transforms.products import ProductSpec
from transforms.s5p import read_pixels


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
        px = read_pixels(f, product=product, corners=corners)  # plain arrays; corners only for footprints
        read += px.size
        keep = pixel_mask(
            value=px.value,
            uncertainty=px.uncertainty,
            latitude=px.latitude,
            longitude=px.longitude,
            qa=px.qa,
            rule=rule,
        )
        on_day = px.scan_time.astype("datetime64[D]") == np.datetime64(day, "D")  # dims (scanline,)
        if not on_day.all():
            keep &= np.repeat(on_day, px.n_ground_pixel)
        if px.latitude_bounds is not None and px.longitude_bounds is not None:
            # footprints: only the kept pixels, copied together (np.take: about 3 ns per pixel; a dropped
            # pixel, a third of a typical file's, cost about 25 ns in the footprint kernel's passes even as NaN)
            kept = np.flatnonzero(keep)
            acc.add_arrays(
                value=np.take(px.value, kept),
                uncertainty=np.take(px.uncertainty, kept),
                latitude_bounds=np.take(px.latitude_bounds, kept, axis=0),
                longitude_bounds=np.take(px.longitude_bounds, kept, axis=0),
            )
        else:
            value = px.value  # freshly read, ours: a dropped pixel gets NaN, which the centre kernel skips
            np.copyto(value, np.nan, where=~keep)
            acc.add_arrays(
                value=value, uncertainty=px.uncertainty, latitude=px.latitude, longitude=px.longitude
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
