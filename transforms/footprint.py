"""Compiled binning kernels: pixel centres and pixel footprints (corner polygons) onto a regular lat/lon grid.

Both kernels add into the same four accumulators, flat over the grid's cells (``i_lat * n_lon + i_lon``):
``sw`` = Σ f·w, ``swv`` = Σ f·w·v, ``sw2s2`` = Σ (f·w)²·σ² (float64) and ``count`` (int64), where w is the
pixel's weight (1 or 1/σ²) and f the share of the pixel in the cell (1 for centre binning; for footprints the
area of the pixel polygon inside the cell divided by the polygon's area, so Σ f over the grid is 1 for a
pixel inside it and the weighted sum is conserved).

Footprints are clipped in the equal-area plane (longitude, sin latitude), in which every grid cell is a
rectangle and areas are proportional to areas on the sphere. Longitudes are unwrapped corner to corner, so a
pixel straddling ±180° stays one small polygon; its parts beyond the grid's east edge wrap to the west edge
(columns modulo 360°). A pixel whose corners wind around a pole is closed along that pole. Kernels are
compiled with numba without ``fastmath``, so NaN tests stay in: pixels with a non-finite value, uncertainty,
centre or corner are skipped.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeVar, cast

import numba
import numpy as np

_MAXV = 64  # polygon vertex buffer: 7 vertices at most before clipping, +1 per split
_F = TypeVar("_F", bound=Callable[..., Any])


def _jit(fn: _F) -> _F:
    """numba nopython compile, cached on disk, GIL released; no fastmath (it would drop the NaN tests)."""
    return cast(_F, numba.njit(cache=True, nogil=True, fastmath=False)(fn))


@_jit
def centre_kernel(
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
    north_pole_row: bool,
    sw: Any,
    swv: Any,
    sw2s2: Any,
    count: Any,
) -> int:
    """Add each pixel to the cell containing its centre; cells are half-open [edge, edge + res), except that
    a centre exactly on the north pole belongs to the top row of a grid reaching 90°N. Returns pixels binned."""
    n = lat.shape[0]
    used = 0
    for p in range(n):
        la = np.float64(lat[p])
        lo = np.float64(lon[p])
        v = np.float64(value[p])
        s = np.float64(sigma[p])
        if not (math.isfinite(la) and math.isfinite(lo) and math.isfinite(v) and math.isfinite(s)):
            continue
        fi = math.floor((la - south) / res)
        if fi == n_lat and north_pole_row and la == 90.0:
            fi = n_lat - 1
        if fi < 0 or fi >= n_lat:
            continue
        x = (lo - west) % 360.0
        fj = math.floor(x / res)
        if fj >= n_lon:
            continue
        if inverse_variance:
            if not s > 0.0:
                continue
            w = 1.0 / (s * s)
        else:
            w = np.float64(1.0)
        c = int(fi) * n_lon + int(fj)
        sw[c] += w
        swv[c] += w * v
        sw2s2[c] += w * w * s * s
        count[c] += 1
        used += 1
    return used


@_jit
def _area(xs: Any, ys: Any, n: int) -> float:
    a = 0.0
    for k in range(n):
        k2 = k + 1 if k + 1 < n else 0
        a += xs[k] * ys[k2] - xs[k2] * ys[k]
    return abs(a) * 0.5


@_jit
def _split(
    xs: Any, ys: Any, n: int, axis_x: bool, c: float, lx: Any, ly: Any, rx: Any, ry: Any
) -> tuple[int, int]:
    """Split a polygon by the line x = c (axis_x) or y = c into the part ≤ c (l) and the part ≥ c (r)."""
    nl = 0
    nr = 0
    for k in range(n):
        k2 = k + 1 if k + 1 < n else 0
        ax, ay, bx, by = xs[k], ys[k], xs[k2], ys[k2]
        a = ax if axis_x else ay
        b = bx if axis_x else by
        if a <= c:
            lx[nl] = ax
            ly[nl] = ay
            nl += 1
        if a >= c:
            rx[nr] = ax
            ry[nr] = ay
            nr += 1
        if (a < c < b) or (b < c < a):
            t = (c - a) / (b - a)
            ix = c if axis_x else ax + t * (bx - ax)
            iy = ay + t * (by - ay) if axis_x else c
            lx[nl] = ix
            ly[nl] = iy
            nl += 1
            rx[nr] = ix
            ry[nr] = iy
            nr += 1
    return nl, nr


@_jit
def footprint_kernel(
    lat_b: Any,
    lon_b: Any,
    value: Any,
    sigma: Any,
    inverse_variance: bool,
    south: float,
    west: float,
    res: float,
    n_lat: int,
    n_lon: int,
    sw: Any,
    swv: Any,
    sw2s2: Any,
    count: Any,
) -> int:
    """Spread each pixel over the cells its corner polygon covers, by area. lat_b/lon_b: (pixel, corner)
    degrees in S5P corner order. Returns the number of pixels that reached at least one cell."""
    n = lat_b.shape[0]
    n_corner = lat_b.shape[1]
    n360 = round(360.0 / res)
    deg = math.pi / 180.0
    # sin(latitude) of the grid's row edges: rows are bands between consecutive values
    y_edge = np.empty(n_lat + 1)
    for i in range(n_lat + 1):
        y_edge[i] = math.sin((south + i * res) * deg)
    px = np.empty(_MAXV)
    py = np.empty(_MAXV)
    lon_u = np.empty(8)
    bx = np.empty(_MAXV)
    by = np.empty(_MAXV)
    rx = np.empty(_MAXV)
    ry = np.empty(_MAXV)
    cx = np.empty(_MAXV)
    cy = np.empty(_MAXV)
    lx = np.empty(_MAXV)
    ly = np.empty(_MAXV)
    qx = np.empty(_MAXV)
    qy = np.empty(_MAXV)
    used = 0
    for p in range(n):
        v = np.float64(value[p])
        s = np.float64(sigma[p])
        if not (math.isfinite(v) and math.isfinite(s)):
            continue
        ok = True
        for k in range(n_corner):
            if not (math.isfinite(lat_b[p, k]) and math.isfinite(lon_b[p, k])):
                ok = False
        if not ok:
            continue
        if inverse_variance:
            if not s > 0.0:
                continue
            w = 1.0 / (s * s)
        else:
            w = np.float64(1.0)
        # unwrap longitudes corner to corner (each step in [-180, 180))
        lon_u[0] = np.float64(lon_b[p, 0])
        for k in range(1, n_corner):
            d = (np.float64(lon_b[p, k]) - lon_u[k - 1] + 180.0) % 360.0 - 180.0
            lon_u[k] = lon_u[k - 1] + d
        d = (np.float64(lon_b[p, 0]) - lon_u[n_corner - 1] + 180.0) % 360.0 - 180.0
        winding = lon_u[n_corner - 1] + d - lon_u[0]  # 0, or ±360 around a pole
        lat_sum = 0.0
        for k in range(n_corner):
            lat_sum += lat_b[p, k]
        nv = 0
        for k in range(n_corner):
            px[nv] = lon_u[k]
            py[nv] = np.float64(lat_b[p, k])
            nv += 1
        if abs(winding) > 180.0:
            pole = 90.0 if lat_sum > 0 else -90.0
            px[nv] = lon_u[0] + winding
            py[nv] = np.float64(lat_b[p, 0])
            px[nv + 1] = lon_u[0] + winding
            py[nv + 1] = pole
            px[nv + 2] = lon_u[0]
            py[nv + 2] = pole
            nv += 3
        # shift so the westernmost vertex lies in [west, west + 360); to column space
        xmin = px[0]
        xmax = px[0]
        lat_min = py[0]
        lat_max = py[0]
        for k in range(1, nv):
            xmin = min(xmin, px[k])
            xmax = max(xmax, px[k])
            lat_min = min(lat_min, py[k])
            lat_max = max(lat_max, py[k])
        shift = west + math.floor((xmin - west) / 360.0) * 360.0
        for k in range(nv):
            px[k] = (px[k] - shift) / res
            py[k] = math.sin(py[k] * deg)
        xmin = (xmin - shift) / res
        xmax = (xmax - shift) / res
        i0 = math.floor((lat_min - south) / res)
        i1 = math.floor((lat_max - south) / res)
        if lat_max >= 90.0 and south + n_lat * res >= 90.0:
            i1 = min(i1, n_lat - 1)
        j0 = math.floor(xmin)
        j1 = math.floor(xmax)
        if xmax == j1 and j1 > j0:  # a polygon ending exactly on an edge does not enter the next column
            j1 -= 1
        if lat_max == south + i1 * res and i1 > i0:
            i1 -= 1
        if i1 < 0 or i0 >= n_lat:
            continue
        area = _area(px, py, nv)
        if (i0 == i1 and j0 == j1) or not area > 0.0:
            # one cell (or a degenerate polygon): the whole pixel goes to the cell of its first corner
            jj = j0 % n360
            if i0 < 0 or i0 >= n_lat or jj >= n_lon:
                continue
            c = i0 * n_lon + jj
            sw[c] += w
            swv[c] += w * v
            sw2s2[c] += w * w * s * s
            count[c] += 1
            used += 1
            continue
        reached = False
        nb = nv
        for k in range(nv):
            bx[k] = px[k]
            by[k] = py[k]
        if i0 < 0:  # drop the part south of the grid
            nl, nr = _split(bx, by, nb, False, y_edge[0], cx, cy, rx, ry)
            nb = nr
            for k in range(nr):
                bx[k] = rx[k]
                by[k] = ry[k]
        ia = max(i0, 0)
        ib = min(i1, n_lat - 1)
        # sweep rows south to north: split the band below each row's north edge off the rest (b)
        for i in range(ia, ib + 1):
            if nb < 3:
                break
            if i < ib or i1 > ib:
                nl, nr = _split(bx, by, nb, False, y_edge[i + 1], lx, ly, rx, ry)
                nb = nr
                for k in range(nr):
                    bx[k] = rx[k]
                    by[k] = ry[k]
            else:
                nl = nb
                for k in range(nb):
                    lx[k] = bx[k]
                    ly[k] = by[k]
                nb = 0
            # the band (l); sweep columns west to east, splitting each cell (c) off the rest (q)
            nq = nl
            for k in range(nl):
                qx[k] = lx[k]
                qy[k] = ly[k]
            for j in range(j0, j1 + 1):
                if nq < 3:
                    break
                if j < j1:
                    ml, mr = _split(qx, qy, nq, True, float(j + 1), cx, cy, rx, ry)
                    nq = mr
                    for k in range(mr):
                        qx[k] = rx[k]
                        qy[k] = ry[k]
                else:
                    ml = nq
                    for k in range(nq):
                        cx[k] = qx[k]
                        cy[k] = qy[k]
                    nq = 0
                if ml >= 3:
                    a = _area(cx, cy, ml)
                    jj = j % n360
                    if a > 0.0 and jj < n_lon:
                        fw = a / area * w
                        c = i * n_lon + jj
                        sw[c] += fw
                        swv[c] += fw * v
                        sw2s2[c] += fw * fw * s * s
                        count[c] += 1
                        reached = True
        if reached:
            used += 1
    return used


def warm_up() -> None:
    """Compile both kernels for float32 and float64 inputs (numba caches the result on disk)."""
    for dtype in (np.float32, np.float64):
        a1 = np.zeros(1, dtype=dtype)
        a2 = np.zeros((1, 4), dtype=dtype)
        acc = (np.zeros(1), np.zeros(1), np.zeros(1), np.zeros(1, dtype=np.int64))
        centre_kernel(a1, a1, a1, a1, True, -90.0, -180.0, 360.0, 1, 1, True, *acc)
        footprint_kernel(a2, a2, a1, a1, True, -90.0, -180.0, 360.0, 1, 1, *acc)
