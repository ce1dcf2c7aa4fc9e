"""Daily zonal sums over region masks, streamed over a cube's chunks with compiled kernels.

A region mask is an integer array, dims (lat, lon), holding each cell's region index (0..n-1) or -1 for none
(ocean, outside every region): :func:`transforms.regions.country_mask` makes one. The kernels walk a block
once, skip non-finite values (unobserved cells are NaN, never zero) and add into per-(day, region) sums, so
a year of global 0.1° days costs one pass over the data and memory of one chunk per worker thread. The plain
sum reads only land: the mask is precomputed once into runs of equal index along each row, so ocean cells
are skipped a run at a time and each land run is a contiguous loop. They are
compiled with numba (``nogil``, so dask's threads run them in parallel; ``cache``, so each process compiles
once per machine).
"""

from __future__ import annotations

from typing import Any

import dask.array as da
import numba
import numpy as np

from transforms.errors import InputError

_jit = numba.njit(cache=True, nogil=True, fastmath=False)


@_jit
def _run_lengths(regions: Any) -> Any:  # pragma: no cover - compiled
    """Per cell, how many cells from it (inclusive) along its row hold the same region index."""
    ny, nx = regions.shape
    out = np.empty((ny, nx), dtype=np.int32)
    for y in range(ny):
        out[y, nx - 1] = 1
        for x in range(nx - 2, -1, -1):
            out[y, x] = out[y, x + 1] + 1 if regions[y, x] == regions[y, x + 1] else 1
    return out


@_jit
def _sum_kernel(values: Any, regions: Any, runs: Any, n: int) -> Any:  # pragma: no cover - compiled
    nt, ny, nx = values.shape
    out = np.zeros((nt, n))
    for y in range(ny):
        x = 0
        while x < nx:
            k = regions[y, x]
            stop = min(x + runs[y, x], nx)  # runs count from this cell; a block may cut them
            if k >= 0:
                for t in range(nt):
                    s = 0.0
                    for i in range(x, stop):
                        v = values[t, y, i]
                        if np.isfinite(v):
                            s += v
                    out[t, k] += s
            x = stop
    return out


@_jit
def _observed_kernel(
    mean: Any,
    count: Any,
    unc: Any,
    regions: Any,
    weight: Any,
    footprint: Any,
    nb_idx: Any,
    nb_wh: Any,
    background: float,
    n: int,
) -> Any:  # pragma: no cover - compiled
    nt, ny, nx = mean.shape
    n_layers = nb_idx.shape[0]
    out = np.zeros((nt, 4 + n, n))
    for t in range(nt):
        for y in range(ny):
            for x in range(nx):
                k = regions[y, x]
                if k < 0 or count[t, y, x] <= 0:
                    continue
                v = mean[t, y, x]
                if not np.isfinite(v):
                    continue
                s = unc[t, y, x]
                if not np.isfinite(s):
                    s = 0.0
                w = weight[y, x]
                out[t, 0, k] += w
                out[t, 1, k] += w * (v - background)
                out[t, 2, k] += w * footprint[y, x]
                out[t, 3, k] += w * w * s * s
                for j in range(n_layers):
                    other = nb_idx[j, y, x]
                    if other < 0:
                        break
                    out[t, 4 + k, other] += nb_wh[j, y, x]
    return out


def _check(shape: tuple[int, ...], regions: np.ndarray) -> None:
    if len(shape) != 3 or tuple(shape[1:]) != regions.shape:
        raise InputError(
            f"values of shape {shape} do not match the region mask {regions.shape}; "
            "pass (time, lat, lon) values on the mask's grid"
        )


def _block_sum(values: np.ndarray, regions: np.ndarray, runs: np.ndarray, *, n: int) -> np.ndarray:
    out: np.ndarray = _sum_kernel(values, regions, runs, n)
    return out[:, None, None, :]


def zonal_sums(values: np.ndarray | da.Array, regions: np.ndarray, n: int) -> np.ndarray | da.Array:
    """Per day and region, the sum of the finite values: dims (time, region), float64, the values' units.

    ``values``: dims (time, lat, lon), numpy or dask (then lazy: one kernel call per chunk, partial sums
    added; nothing is computed here). ``regions``: integer (lat, lon) mask, -1 for no region; ``n``: the
    number of regions. A region with no finite cell on a day sums to 0: count cells with the same function
    on ``np.isfinite(values)`` to tell "unobserved" from "zero".
    """
    regions = np.asarray(regions)
    _check(tuple(values.shape), regions)
    regions = regions.astype(np.int32, copy=False)
    runs = _run_lengths(regions)  # once per call: the kernels then skip ocean and sum land runs
    if not isinstance(values, da.Array):
        out: np.ndarray = _sum_kernel(np.asarray(values), regions, runs, n)
        return out
    static = [da.from_array(a, chunks=values.chunks[1:]) for a in (regions, runs)]  # type: ignore[no-untyped-call]
    parts = da.blockwise(  # type: ignore[no-untyped-call]
        _block_sum, "tyxk", values, "tyx", static[0], "yx", static[1], "yx",
        new_axes={"k": n}, adjust_chunks={"y": 1, "x": 1}, dtype=np.float64,
        meta=np.empty((0, 0, 0, 0)), n=n,
    )  # fmt: skip
    total: da.Array = parts.sum(axis=(1, 2))
    return total


def _block_observed(
    mean: np.ndarray,
    count: np.ndarray,
    unc: np.ndarray,
    regions: np.ndarray,
    weight: np.ndarray,
    footprint: np.ndarray,
    *layers: np.ndarray,
    background: float,
    n: int,
) -> np.ndarray:
    half = len(layers) // 2
    nb_idx = np.stack(layers[:half]) if half else np.full((0, *regions.shape), -1, dtype=np.int16)
    nb_wh = np.stack(layers[half:]) if half else np.zeros((0, *regions.shape), dtype=np.float32)
    out: np.ndarray = _observed_kernel(
        mean, count, unc, regions, weight, footprint, nb_idx, nb_wh, background, n
    )
    return out.reshape(out.shape[0], 1, 1, (4 + n) * n)


def observed_sums(
    mean: np.ndarray | da.Array,
    count: np.ndarray | da.Array,
    uncertainty: np.ndarray | da.Array,
    *,
    regions: np.ndarray,
    weight: np.ndarray,
    footprint: np.ndarray,
    background: float,
    n: int,
    neighbours: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """The per-day, per-region sums the emissions inversion needs, over observed cells only.

    Dims of the result (time, 4 + region, region), float64. ``[:, 0:4, c]``: Σw, Σw·(V − background), Σw·H
    and Σw²σ² over the observed cells of region c (``count > 0`` and a finite ``mean`` V, mol m-2; a
    non-finite ``uncertainty`` σ counts as 0). ``[:, 4 + c, k]``: Σ over the same cells of the neighbour
    terms of region k, given as ``neighbours = (index, value)``, dims (layer, lat, lon): per cell up to
    "layer" other regions (index, int; -1 ends a cell's list) and their term (e.g. w·H_k, mol m-2).
    ``mean``, ``count``, ``uncertainty``: dims (time, lat, lon), numpy or dask (one graph over the chunks of
    ``mean``; the small result is computed here). ``weight`` (unitless) and ``footprint`` (H, mol m-2 per
    MtCO2/day): dims (lat, lon).
    """
    regions = np.asarray(regions)
    _check(tuple(mean.shape), regions)
    regions = regions.astype(np.int32, copy=False)
    weight = np.asarray(weight, dtype=np.float64)
    footprint = np.asarray(footprint, dtype=np.float64)
    if neighbours is None:
        layers: list[np.ndarray] = []
    else:
        nb_idx, nb_wh = (np.asarray(a) for a in neighbours)
        if nb_idx.shape != nb_wh.shape or nb_idx.shape[1:] != regions.shape:
            raise InputError(
                f"neighbour layers {nb_idx.shape}/{nb_wh.shape} do not match the mask {regions.shape}"
            )
        layers = [*nb_idx, *nb_wh]
    kwargs: dict[str, Any] = {"background": float(background), "n": n}
    if not any(isinstance(a, da.Array) for a in (mean, count, uncertainty)):
        eager = _block_observed(
            np.asarray(mean),
            np.asarray(count),
            np.asarray(uncertainty),
            regions,
            weight,
            footprint,
            *layers,
            **kwargs,
        )
        return eager[:, 0, 0, :].reshape(-1, 4 + n, n)
    lazy = da.asarray(mean)  # type: ignore[no-untyped-call]
    chunks = lazy.chunks
    count_l = da.asarray(count).rechunk(chunks)  # type: ignore[no-untyped-call]
    unc_l = da.asarray(uncertainty).rechunk(chunks)  # type: ignore[no-untyped-call]
    statics = [
        da.from_array(a, chunks=chunks[1:])  # type: ignore[no-untyped-call]
        for a in (regions, weight, footprint, *layers)
    ]
    pairs: list[Any] = []
    for a in statics:
        pairs += [a, "yx"]
    parts = da.blockwise(  # type: ignore[no-untyped-call]
        _block_observed, "tyxk",
        lazy, "tyx", count_l, "tyx", unc_l, "tyx", *pairs,
        new_axes={"k": (4 + n) * n}, adjust_chunks={"y": 1, "x": 1}, dtype=np.float64,
        meta=np.empty((0, 0, 0, 0)), **kwargs,
    )  # fmt: skip
    result: np.ndarray = np.asarray(parts.sum(axis=(1, 2)).compute()).reshape(-1, 4 + n, n)
    return result
