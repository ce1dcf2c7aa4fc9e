"""One reader per product family, one entry point: a granule in, the standard observations Dataset out; and
one gridding entry point for a day's files of any product (:func:`grid_granules`).

The standard observations Dataset has dim ``pixel`` (and ``corner`` = 4) with ``value``, ``uncertainty``
(value units), ``qa`` (0–1; keep ``qa > spec.qa_threshold``), ``latitude``/``longitude`` (degrees), ``time``
(datetime64[ns], UTC) and, unless ``corners=False``, ``latitude_bounds``/``longitude_bounds`` (pixel, corner).
Every reader opens lazily with h5py and reads only those variables.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from typing import Any, BinaryIO

import numpy as np
import xarray as xr

from transforms.grid import GridSpec
from transforms.gridding import GridAccumulator, Method, QualityRule, Weighting, day_mask, observation_mask
from transforms.l3 import DayStats
from transforms.l3 import grid_granules as grid_s5p_granules
from transforms.products import ProductSpec, get_product
from transforms.soundings import Source

Reader = Callable[..., xr.Dataset]


def reader_for(product: str | ProductSpec) -> Reader:
    """The reader function of ``product``'s family (called as ``reader(source, product=..., corners=...)``)."""
    family = get_product(product).family
    if family == "oco_lite":
        from transforms.oco import open_lite_observations

        return open_lite_observations
    if family == "gosat_nies":
        from transforms.gosat import open_nies_observations

        return open_nies_observations
    if family == "tansat_lite":
        from transforms.tansat import open_tansat_observations

        return open_tansat_observations
    from transforms.s5p import open_observations as open_s5p

    return open_s5p


def open_observations(source: Source, *, product: str | ProductSpec, corners: bool = True) -> xr.Dataset:
    """Read a granule of ``product`` (any family) into the standard observations Dataset. ``source`` is a
    path or a binary file object (not closed). Raises GranuleReadError for unreadable or wrong-product files."""
    reader: Any = reader_for(product)
    ds: xr.Dataset = reader(source, product=product, corners=corners)
    return ds


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
    """Grid the observations of ``day`` (UTC) from all ``files`` of ``product`` onto ``grid``: fields with dims
    (lat, lon) — ``mean``, ``uncertainty``, ``count``, ``weight`` — and their stats.

    S5P products go through :func:`transforms.l3.grid_granules` (the optimised S5P path); the sounding
    families read each file with their reader and bin it into the same accumulator, keeping
    ``qa > qa_threshold`` (default the product's: for flag products, exactly the flagged-good soundings).
    """
    spec = get_product(product)
    if spec.family == "s5p":
        return grid_s5p_granules(
            files,
            day=day,
            grid=grid,
            product=spec,
            method=method,
            weighting=weighting,
            qa_threshold=qa_threshold,
        )
    rule = QualityRule(qa_above=spec.qa_threshold if qa_threshold is None else qa_threshold)
    acc = GridAccumulator(grid, method=method, weighting=weighting)
    read = 0
    corners = method == "footprint"
    for f in files:
        obs = open_observations(f, product=spec, corners=corners)
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
