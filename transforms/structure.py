"""A granule's structure checked without decoding its data: the harvest-time check for bytes that match a
published checksum (decoding is left to gridding, which quarantines what it cannot read).

For an S5P L2 file (opened by path, HDF5's own driver): the product is the one expected, the variables any
gridding method reads exist with the dims the reader needs — value (or its corrected variant), precision,
qa_value, latitude, longitude (scanline, ground_pixel), the pixel corners (scanline, ground_pixel, 4),
delta_time and a time reference — and every stored chunk of those variables (or the contiguous block) lies
inside the file. Nothing is inflated: a chunk whose compressed bytes are corrupt passes.
"""

from __future__ import annotations

import os
from typing import Any

import h5py

from transforms.errors import GranuleReadError, InputError
from transforms.products import ProductSpec, get_product

# the reader's own product and time-reference checks (attributes only; nothing decoded)
from transforms.s5p import GEOLOCATIONS, _check_product, _reference_time
from transforms.soundings import open_hdf5, read_errors_as_granule_errors


def check_structure(path: str, *, product: str | ProductSpec, label: str | None = None) -> None:
    """Raise :class:`GranuleReadError` (naming ``label``, default ``path``) when the S5P granule at ``path``
    lacks what the reader needs or a stored chunk of it lies outside the file (see module doc)."""
    spec = get_product(product)
    if spec.family != "s5p":
        raise InputError(f"check_structure checks S5P granules, not {spec.name}")
    name = label or path

    def check() -> None:
        size = os.path.getsize(path)
        with open_hdf5(path, name) as f:
            _check_product(f, spec, name)
            product_group = f.get("PRODUCT")
            if not isinstance(product_group, h5py.Group):
                raise GranuleReadError(f"granule {name} has no PRODUCT group: not an S5P L2 file")
            geoloc = f.get(GEOLOCATIONS)
            if not isinstance(geoloc, h5py.Group):
                raise GranuleReadError(f"granule {name} has no {GEOLOCATIONS} group (pixel corners)")
            value_var = spec.value_var
            if spec.corrected_var and isinstance(product_group.get(spec.corrected_var), h5py.Dataset):
                value_var = spec.corrected_var
            lat = _dataset(product_group, "latitude", name)
            grid = _squeezed(lat, 2, name)
            for var in ("longitude", value_var, spec.precision_var, "qa_value"):
                ds = _dataset(product_group, var, name)
                if _squeezed(ds, 2, name) != grid:
                    raise GranuleReadError(
                        f"granule {name}: {var} has shape {ds.shape}, latitude {lat.shape}"
                    )
                _check_storage(ds, size, name)
            _check_storage(lat, size, name)
            for var in ("latitude_bounds", "longitude_bounds"):
                ds = _dataset(geoloc, var, name)
                if _squeezed(ds, 3, name) != (*grid, 4):
                    raise GranuleReadError(
                        f"granule {name}: {var} has shape {ds.shape}, expected (*, {grid}, 4)"
                    )
                _check_storage(ds, size, name)
            delta = _dataset(product_group, "delta_time", name)
            shape = delta.shape[1:] if delta.ndim >= 2 and delta.shape[0] == 1 else delta.shape
            if shape not in ((grid[0],), grid):
                raise GranuleReadError(
                    f"granule {name}: delta_time has shape {delta.shape}, expected (time, {grid[0]})"
                )
            _check_storage(delta, size, name)
            _reference_time(f, product_group, name)

    read_errors_as_granule_errors(name, check)


def _dataset(group: h5py.Group, var: str, label: str) -> h5py.Dataset:
    obj = group.get(var)
    if not isinstance(obj, h5py.Dataset):
        raise GranuleReadError(f"granule {label}: {group.name} group has no variable {var}")
    return obj


def _squeezed(ds: h5py.Dataset, ndim: int, label: str) -> tuple[int, ...]:
    """The shape without the leading ``time`` dim of size 1 (files without it are accepted)."""
    shape: tuple[int, ...] = ds.shape
    if len(shape) == ndim + 1 and shape[0] == 1:
        shape = shape[1:]
    if len(shape) != ndim:
        raise GranuleReadError(
            f"granule {label}: variable {ds.name} has shape {ds.shape}, expected {ndim} dims"
        )
    return shape


def _check_storage(ds: h5py.Dataset, file_size: int, label: str) -> None:
    """Every stored chunk (or the contiguous block) of ``ds`` ends inside the file of ``file_size`` bytes."""
    end = 0
    if ds.chunks is None:
        offset = ds.id.get_offset()
        if offset is not None:  # None: never written (all fill), or compact (inside the object header)
            end = offset + ds.id.get_storage_size()
    else:
        ends: list[int] = []

        def visit(info: Any) -> None:
            ends.append(info.byte_offset + info.size)

        ds.id.chunk_iter(visit)
        end = max(ends, default=0)
    if end > file_size:
        raise GranuleReadError(
            f"granule {label}: variable {ds.name} is stored up to byte {end}, beyond the file's {file_size} "
            "bytes (truncated?); download it again"
        )
