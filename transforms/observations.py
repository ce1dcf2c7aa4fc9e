"""One reader per product family, one entry point: a granule in, the standard observations Dataset out.

The standard observations Dataset has dim ``pixel`` (and ``corner`` = 4) with ``value``, ``uncertainty``
(value units), ``qa`` (0–1; keep ``qa > spec.qa_threshold``), ``latitude``/``longitude`` (degrees), ``time``
(datetime64[ns], UTC) and, unless ``corners=False``, ``latitude_bounds``/``longitude_bounds`` (pixel, corner).
Every reader opens lazily with h5py and reads only those variables.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import xarray as xr

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
