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

from dataclasses import dataclass
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
def _normal_kernel(
    mean: Any,
    count: Any,
    unc: Any,
    regions: Any,
    weight: Any,
    fp_idx: Any,
    fp_val: Any,
    background: float,
    floor: float,
    n: int,
) -> Any:  # pragma: no cover - compiled
    nt, ny, nx = mean.shape
    n_layers = fp_idx.shape[0]
    m = n + 1  # unknowns: n regions and the day's background offset (last)
    base_b = m * m
    base_c = base_b + m
    out = np.zeros((nt, base_c + n + 2))
    floor2 = floor * floor
    for t in range(nt):
        o = out[t]
        # the background's sums stay in registers; the region terms go to ``o``
        sum_w = 0.0
        sum_wv = 0.0
        sum_wvv = 0.0
        cells = 0.0
        for y in range(ny):
            for x in range(nx):
                if count[t, y, x] <= 0:
                    continue
                v = mean[t, y, x]
                if not np.isfinite(v):
                    continue
                s = unc[t, y, x]
                if not np.isfinite(s):
                    s = 0.0
                omega = 1.0 / (s * s + floor2)
                v = v - background
                k = regions[y, x]
                if k >= 0:
                    o[base_c + k] += weight[y, x]
                sum_wvv += omega * v * v
                cells += 1.0
                sum_w += omega
                sum_wv += omega * v
                for j in range(n_layers):
                    a = fp_idx[j, y, x]
                    if a < 0:
                        break
                    h = omega * fp_val[j, y, x]
                    o[base_b + a] += h * v
                    o[a * m + n] += h
                    for i in range(n_layers):
                        c = fp_idx[i, y, x]
                        if c < 0:
                            break
                        o[a * m + c] += h * fp_val[i, y, x]
        o[base_c + n] += sum_wvv
        o[base_c + n + 1] += cells
        o[n * m + n] += sum_w
        o[base_b + n] += sum_wv
        for a in range(n):  # the background row mirrors its column
            o[n * m + a] = o[a * m + n]
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


def _block_normal(
    mean: np.ndarray,
    count: np.ndarray,
    unc: np.ndarray,
    regions: np.ndarray,
    weight: np.ndarray,
    *layers: np.ndarray,
    background: float,
    floor: float,
    n: int,
) -> np.ndarray:
    half = len(layers) // 2
    fp_idx = np.stack(layers[:half]) if half else np.full((0, *regions.shape), -1, dtype=np.int16)
    fp_val = np.stack(layers[half:]) if half else np.zeros((0, *regions.shape), dtype=np.float32)
    # one compiled variant for C-contiguous blocks (strided views compile to a several times slower loop)
    c = np.ascontiguousarray
    out: np.ndarray = _normal_kernel(
        c(mean), c(count), c(unc), c(regions), c(weight), fp_idx, fp_val, background, floor, n
    )
    return out[:, None, None, :]


@dataclass(frozen=True)
class NormalEquations:
    """Per day, the weighted least-squares normal equations of the observed cells (see
    :func:`normal_equations`). Dims: ``matrix`` (time, n + 1, n + 1), ``rhs`` (time, n + 1), ``coverage``
    (time, n), ``chi2_data`` and ``cells`` (time,)."""

    matrix: np.ndarray
    rhs: np.ndarray
    coverage: np.ndarray
    chi2_data: np.ndarray
    cells: np.ndarray


def normal_equations(
    mean: np.ndarray | da.Array,
    count: np.ndarray | da.Array,
    uncertainty: np.ndarray | da.Array,
    *,
    regions: np.ndarray,
    weight: np.ndarray,
    footprints: tuple[np.ndarray, np.ndarray],
    background: float,
    n: int,
    floor: float = 0.0,
) -> NormalEquations:
    """Per day, the normal equations of V − background = Σ_k H_k·x_k + b over the observed cells.

    Observed cell i: ``count > 0`` and a finite ``mean`` V (mol m-2), weight ω_i = 1 / (σ_i² + floor²) with
    σ_i the ``uncertainty`` (1σ of the cell mean, mol m-2; non-finite counts as 0). ``footprints = (index,
    value)``, dims (layer, lat, lon): per cell up to "layer" unknowns k (int, -1 ends a cell's list) and
    H_k(i) (mol m-2 per unit of x_k). Unknown n (the last) is the day's background offset b (H = 1 on every
    cell). Sums: matrix[k, l] = Σ ω H_k H_l, rhs[k] = Σ ω H_k (V − background), chi2_data = Σ ω (V −
    background)², cells = number of observed cells, coverage[c] = Σ ``weight`` over the observed cells whose
    ``regions`` index is c (-1: none). ``mean``, ``count``, ``uncertainty``: dims (time, lat, lon), numpy or
    dask (one graph over the chunks of ``mean``; the small result is computed here).
    """
    regions = np.asarray(regions)
    _check(tuple(mean.shape), regions)
    regions = regions.astype(np.int32, copy=False)
    weight = np.asarray(weight, dtype=np.float64)
    fp_idx, fp_val = (np.asarray(a) for a in footprints)
    if fp_idx.shape != fp_val.shape or fp_idx.shape[1:] != regions.shape:
        raise InputError(
            f"footprint layers {fp_idx.shape}/{fp_val.shape} do not match the mask {regions.shape}"
        )
    if fp_idx.size and int(fp_idx.max()) >= n:
        raise InputError(f"footprint layers index unknown {int(fp_idx.max())}, but n = {n}")
    layers = [*fp_idx, *fp_val]
    kwargs: dict[str, Any] = {"background": float(background), "floor": float(floor), "n": n}
    if not any(isinstance(a, da.Array) for a in (mean, count, uncertainty)):
        flat = _block_normal(
            np.asarray(mean), np.asarray(count), np.asarray(uncertainty), regions, weight, *layers, **kwargs
        )[:, 0, 0, :]
    else:
        lazy = da.asarray(mean)  # type: ignore[no-untyped-call]
        chunks = lazy.chunks
        count_l = da.asarray(count).rechunk(chunks)  # type: ignore[no-untyped-call]
        unc_l = da.asarray(uncertainty).rechunk(chunks)  # type: ignore[no-untyped-call]
        statics = [
            da.from_array(a, chunks=chunks[1:], name=False)  # type: ignore[no-untyped-call]  # no hashing
            for a in (regions, weight, *layers)
        ]
        pairs: list[Any] = []
        for a in statics:
            pairs += [a, "yx"]
        m = n + 1
        parts = da.blockwise(  # type: ignore[no-untyped-call]
            _block_normal, "tyxk",
            lazy, "tyx", count_l, "tyx", unc_l, "tyx", *pairs,
            new_axes={"k": m * m + m + n + 2}, adjust_chunks={"y": 1, "x": 1}, dtype=np.float64,
            meta=np.empty((0, 0, 0, 0)), **kwargs,
        )  # fmt: skip
        flat = np.asarray(parts.sum(axis=(1, 2)).compute())
    m = n + 1
    nt = flat.shape[0]
    return NormalEquations(
        matrix=flat[:, : m * m].reshape(nt, m, m),
        rhs=flat[:, m * m : m * m + m],
        coverage=flat[:, m * m + m : m * m + m + n],
        chi2_data=flat[:, -2],
        cells=flat[:, -1],
    )
