"""The binning kernels' fast paths against plain references: the vectorised centre kernel equals the scalar
per-pixel kernel it replaced bit for bit (every skip rule, the longitude wrap, the pole row, block tails);
the footprint kernel gives the same sums whatever the alignment of the cell sums (its 4-wide adds) and
whatever the longitude convention of its corners."""

from __future__ import annotations

import math
from typing import Any

import numba
import numpy as np
import pytest

from transforms import footprint
from transforms.grid import GridSpec
from transforms.gridding import GridAccumulator


@numba.njit(cache=False, fastmath=False, error_model="numpy")
def _scalar_centre_kernel(
    lat: Any,
    lon: Any,
    value: Any,
    sigma: Any,
    inverse_variance: bool,
    south: float,
    west: float,
    res: float,
    n_lat: int,
    n_lon: int,
    pole: bool,
    sums: Any,
) -> int:
    """The centre kernel before the vectorised passes, one pixel at a time (the reference)."""
    used = 0
    for p in range(lat.shape[0]):
        la = np.float64(lat[p])
        lo = np.float64(lon[p])
        v = np.float64(value[p])
        s = np.float64(sigma[p])
        if not (math.isfinite(la) and math.isfinite(lo) and math.isfinite(v) and math.isfinite(s)):
            continue
        fi = math.floor((la - south) / res)
        if fi == n_lat and pole and la == 90.0:
            fi = n_lat - 1
        if fi < 0 or fi >= n_lat:
            continue
        d = lo - west
        if not (0.0 <= d < 360.0):
            d = d % 360.0
        x = d + west
        fj = math.floor((x - west) / res)
        if fj >= n_lon:
            continue
        if inverse_variance:
            if not s > 0.0:
                continue
            w = 1.0 / (s * s)
        else:
            w = np.float64(1.0)
        c = int(fi) * n_lon + int(fj)
        sums[c, 0] += w
        sums[c, 1] += w * v
        sums[c, 2] += w * w * s * s
        sums[c, 3] += 1.0
        used += 1
    return used


def _centres(n: int, grid: GridSpec, dtype: type, seed: int) -> tuple[np.ndarray, ...]:
    """Centres with every case the kernel tells apart: outside the rows, longitudes needing the modulo
    (±400°), exact cell edges, the north pole, NaN and inf in each input, σ ≤ 0."""
    if n == 0:
        return tuple(np.empty(0, dtype=dtype) for _ in range(4))
    rng = np.random.default_rng(seed)
    west, south, _, north = grid.bounds
    lat = rng.uniform(south - 5.0, north + 5.0, n)
    lon = rng.uniform(-400.0, 400.0, n)
    value = rng.normal(1.0, 0.5, n)
    sigma = rng.uniform(0.05, 1.0, n)
    k = rng.integers(0, n, n // 5)
    lat[k[: len(k) // 2]] = south + grid.resolution * rng.integers(0, grid.shape[0] + 1, len(k) // 2)
    lon[k[len(k) // 2 :]] = west + grid.resolution * rng.integers(-5, grid.shape[1] + 5, len(k) - len(k) // 2)
    lat[rng.integers(0, n, 5)] = 90.0
    for arr in (lat, lon, value, sigma):
        arr[rng.integers(0, n, 3)] = np.nan
        arr[rng.integers(0, n, 2)] = np.inf
    sigma[rng.integers(0, n, 4)] = 0.0
    sigma[rng.integers(0, n, 4)] = -1.0
    return tuple(a.astype(dtype) for a in (lat, lon, value, sigma))


GRIDS = [
    GridSpec(0.5),
    GridSpec(3.0),
    GridSpec(0.5, (170.0, -30.0, 200.0, 30.0)),  # across ±180
    GridSpec(0.25, (-5.0, 42.0, 20.0, 56.0)),
    GridSpec(1.0, (-180.0, 60.0, 180.0, 90.0)),  # reaching the north pole
]


@pytest.mark.parametrize("grid", GRIDS, ids=lambda g: g.grid_id)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("inverse_variance", [True, False])
@pytest.mark.parametrize("n", [0, 1, 511, 512, 513, 5000])
def test_centre_kernel_equals_the_scalar_kernel_bit_for_bit(
    grid: GridSpec, dtype: type, inverse_variance: bool, n: int
) -> None:
    west, south, _, north = grid.bounds
    n_lat, n_lon = grid.shape
    lat, lon, value, sigma = _centres(n, grid, dtype, seed=n)
    args = (inverse_variance, south, west, grid.resolution, n_lat, n_lon, north >= 90.0)
    expected = np.zeros((n_lat * n_lon, 4))
    got = np.zeros((n_lat * n_lon, 4))
    used = footprint.centre_kernel(lat, lon, value, sigma, *args, got)
    assert used == _scalar_centre_kernel(lat, lon, value, sigma, *args, expected)
    np.testing.assert_array_equal(got, expected)
    if n == 5000:
        assert 0 < used < n


def test_centre_cells_equal_grid_cell_index() -> None:
    """Every binned centre lands in GridSpec.cell_index's cell (the pole row aside)."""
    grid = GridSpec(0.5, (170.0, -30.0, 200.0, 30.0))
    lat, lon, value, sigma = _centres(20_000, grid, np.float64, seed=7)
    keep = np.isfinite(value) & np.isfinite(sigma) & (sigma > 0) & (lat != 90.0)
    lat, lon, value, sigma = lat[keep], lon[keep], value[keep], sigma[keep]
    acc = GridAccumulator(grid)
    acc.add_arrays(value=value, uncertainty=sigma, latitude=lat, longitude=lon)
    idx = grid.cell_index(lat, lon)
    np.testing.assert_array_equal(acc.count, np.bincount(idx[idx >= 0], minlength=acc.count.size))


def _swath(n_scan: int, n_pix: int, lat0: float, lon0: float) -> tuple[np.ndarray, ...]:
    """A tilted swath of quadrilateral pixels (0.05° × 0.04°, about a 0.1° grid's cell) crossing ±180."""
    rng = np.random.default_rng(11)
    i, j = np.meshgrid(np.arange(n_scan), np.arange(n_pix), indexing="ij")
    lat = lat0 + 0.04 * i + 0.01 * j
    lon = lon0 + 0.05 * j - 0.01 * i
    dlat = np.array([-0.02, -0.02, 0.02, 0.02])
    dlon = np.array([-0.025, 0.025, 0.025, -0.025])
    lat_b = (lat[..., None] + dlat).reshape(-1, 4)
    lon_b = (((lon[..., None] + dlon) + 180.0) % 360.0 - 180.0).reshape(-1, 4)
    value = rng.normal(5.0, 1.0, lat_b.shape[0])
    sigma = rng.uniform(0.5, 1.5, lat_b.shape[0])
    return lat_b, lon_b, value, sigma


def test_footprint_sums_do_not_depend_on_their_alignment() -> None:
    grid = GridSpec(0.1)
    n_lat, n_lon = grid.shape
    lat_b, lon_b, value, sigma = _swath(60, 450, 40.0, 170.0)
    buf = np.zeros(n_lat * n_lon * 4 + 8)
    start = (-buf.ctypes.data % 64) // 8
    aligned = buf[start : start + n_lat * n_lon * 4].reshape(-1, 4)  # each cell in one cache line
    shifted = np.zeros(n_lat * n_lon * 4 + 1)[1:].reshape(-1, 4)  # 8 bytes past numpy's alignment
    assert aligned.ctypes.data % 64 == 0 and shifted.ctypes.data % 32 != 0
    args = (True, -90.0, -180.0, 0.1, n_lat, n_lon)
    used = footprint.footprint_kernel(lat_b, lon_b, value, sigma, *args, aligned)
    assert used == footprint.footprint_kernel(lat_b, lon_b, value, sigma, *args, shifted) == lat_b.shape[0]
    np.testing.assert_array_equal(aligned, shifted)


@pytest.mark.parametrize("turns", [-1.0, 1.0, 2.0])
def test_footprint_longitudes_in_any_convention_give_the_same_cells(turns: float) -> None:
    """Corners given 360° (or 720°) off, as in a 0–360 convention: the same pixels, the same sums (to
    rounding: the corners are then shifted back by whole turns), the same counts."""
    grid = GridSpec(0.1)
    n_lat, n_lon = grid.shape
    lat_b, lon_b, value, sigma = _swath(30, 450, -20.0, 160.0)
    args = (True, -90.0, -180.0, 0.1, n_lat, n_lon)
    expected = np.zeros((n_lat * n_lon, 4))
    got = np.zeros((n_lat * n_lon, 4))
    footprint.footprint_kernel(lat_b, lon_b, value, sigma, *args, expected)
    footprint.footprint_kernel(lat_b, lon_b + 360.0 * turns, value, sigma, *args, got)
    np.testing.assert_array_equal(got[:, 3], expected[:, 3])
    np.testing.assert_allclose(got[:, :3], expected[:, :3], rtol=1e-9, atol=1e-12 * expected[:, 0].max())
