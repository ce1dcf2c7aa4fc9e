"""Compiled binning kernels: pixel centres and pixel footprints (corner polygons) onto a regular lat/lon grid.

Both kernels add into one float64 array ``sums`` of shape (cell, 4), cells flat over the grid
(``i_lat * n_lon + i_lon``), columns Σ f·w, Σ f·w·v, Σ (f·w)²·σ² and the pixel count (interleaved so that a
pixel touches one cache line per cell, not four). w is the pixel's weight (1 or 1/σ²) and f its share in the
cell: 1 for centre binning; for footprints the area of the pixel polygon inside the cell divided by the
polygon's area, so Σ f over the grid is 1 for a pixel inside it and the weighted sum is conserved.

Footprints are cut in the equal-area plane (longitude, sin latitude), in which every grid cell is a
rectangle and areas are proportional to areas on the sphere; no polygon clipping. Pixels go in blocks of 256:
each pixel's class, cell range, vertices, sines and slopes, and the strip path's areas column by column, are
straight-line loops over the block that LLVM vectorises (AVX2/AVX-512); a last scalar pass adds the shares
into ``sums``, one 4-wide FMA per cell, with the cells of the pixel 16 ahead prefetched. The centre kernel
works the same way in blocks of 512: cells and weights by a vectorised pass, then the sums.

A pixel over at most two rows of a grid of 1° or finer (nearly all of them) takes the strip path: its area
left of each column edge, and the part of that below the row edge, by Green's theorem over its edges slid
along themselves onto the cut lines (no branches, no divisions); a column's cells are differences of
consecutive ones. Any other pixel takes the general path: the closed-form area of the polygon
below-left of each cell corner, by inclusion–exclusion.

Longitudes are unwrapped corner to corner, so a pixel straddling ±180° stays one small polygon; its parts
beyond the grid's east edge wrap to the west edge (columns modulo 360°). A pixel whose corners wind around a
pole is closed along that pole. No fast-math that could drop NaN tests (``nnan``/``ninf``): pixels with a
non-finite value, uncertainty, centre or corner are skipped. The footprint code only lets LLVM fuse
multiply-adds (``contract``); the centre kernel has no fast-math at all.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeVar, cast

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

_F = TypeVar("_F", bound=Callable[..., Any])
_R6, _R12, _R20, _R30, _R42, _R56, _R72 = (1.0 / k for k in (6, 12, 20, 30, 42, 56, 72))  # series terms
_R360 = 1.0 / 360.0


def _jit(fn: _F) -> _F:
    """numba nopython compile, cached on disk, GIL released, no fastmath: every floating-point operation as
    written (the centre kernel's cell index must equal :meth:`GridSpec.cell_index` bit for bit)."""
    return cast(_F, numba.njit(cache=True, nogil=True, fastmath=False, error_model="numpy")(fn))


# The footprint code may fuse a*b + c into one FMA instruction (LLVM's ``contract``: fewer instructions,
# one rounding instead of two). No other fast-math flag: ``nnan``/``ninf`` would let LLVM drop the
# isfinite tests, ``reassoc``/``arcp`` would change sums and divisions (column indices included).
_FOOTPRINT_MATH = {"contract"}


def _fjit(fn: _F) -> _F:
    """As :func:`_jit`, with FMA contraction (footprint kernel and its helpers)."""
    return cast(_F, numba.njit(cache=True, nogil=True, fastmath=_FOOTPRINT_MATH, error_model="numpy")(fn))


def _inline(fn: _F) -> _F:
    """As :func:`_fjit`, inlined into its callers at numba IR level: a helper taking arrays as an ordinary
    call would incref/decref each array argument (atomic operations) on every call."""
    return cast(
        _F,
        numba.njit(cache=True, nogil=True, fastmath=_FOOTPRINT_MATH, error_model="numpy", inline="always")(
            fn
        ),
    )


def _llvm_function(builder: Any, name: str, fnty: Any) -> Any:
    """The LLVM function (an intrinsic) ``name`` of type ``fnty``, declared in the builder's module on first
    use."""
    fn = builder.module.globals.get(name)
    return fn if fn is not None else ir.Function(builder.module, fnty, name)


def _prefetch_typer(typingctx: Any, arr: Any, idx: Any) -> Any:
    """``_prefetch(arr, i)``: ask the CPU to fetch the cache line of ``arr.flat[i]`` for writing (x86
    ``prefetchw``; a hint: never faults, whatever the index)."""

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        ptr = builder.gep(data, [args[1]])
        i32 = ir.IntType(32)
        fn = _llvm_function(
            builder, "llvm.prefetch.p0", ir.FunctionType(ir.VoidType(), [ptr.type, i32, i32, i32])
        )
        builder.call(fn, [ptr, ir.Constant(i32, 1), ir.Constant(i32, 3), ir.Constant(i32, 1)])  # write, keep
        return context.get_dummy_value()

    return types.void(arr, idx), codegen


def _add_share_typer(typingctx: Any, arr: Any, idx: Any, f: Any, f2: Any, w: Any, wv: Any, wss: Any) -> Any:
    """``_add_share(sums, i, f, f², w, wv, wss)``: sums.flat[i : i + 4] += (f·w, f·wv, f²·wss, 1), as one
    4-wide fused multiply-add: one load and one store of the cell's 32 bytes instead of four of each, the
    same roundings as four scalar FMAs."""

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        dbl = ir.DoubleType()
        vec = ir.VectorType(dbl, 4)
        i32 = ir.IntType(32)
        one = ir.Constant(dbl, 1.0)
        f = ir.Constant(vec, ir.Undefined)
        p = ir.Constant(vec, ir.Undefined)
        shares = (args[2], args[2], args[3], one)  # f, f, f², 1
        weights = (args[4], args[5], args[6], one)  # w, wv, wss, 1
        for k, (fk, pk) in enumerate(zip(shares, weights, strict=True)):
            f = builder.insert_element(f, fk, ir.Constant(i32, k))
            p = builder.insert_element(p, pk, ir.Constant(i32, k))
        ptr = builder.bitcast(builder.gep(data, [args[1]]), vec.as_pointer())
        fma = _llvm_function(builder, "llvm.fma.v4f64", ir.FunctionType(vec, [vec, vec, vec]))
        builder.store(builder.call(fma, [f, p, builder.load(ptr, align=8)]), ptr, align=8)
        return context.get_dummy_value()

    return types.void(arr, idx, f, f2, w, wv, wss), codegen


_prefetch: Any = intrinsic(_prefetch_typer)
_add_share: Any = intrinsic(_add_share_typer)


@_inline
def _centre_cell(
    la: float,
    d: float,
    south: float,
    west: float,
    res: float,
    n_lat: int,
    n_lon: int,
    north_pole_row: bool,
) -> float:
    """The flat cell (``i_lat * n_lon + i_lon``, as a float) holding a centre at latitude ``la``, given
    d = longitude − west already in [0, 360); −1 outside the grid. Cells are half-open [edge, edge + res),
    except that a centre exactly on the north pole belongs to the top row of a grid reaching 90°N. The
    arithmetic of :meth:`GridSpec.cell_index`: floor((la − south) / res) and, with x = d + west (its
    (lon − west) % 360 + west), floor((x − west) / res)."""
    fi = np.floor((la - south) / res)
    fi = n_lat - 1.0 if fi == n_lat and north_pole_row and la == 90.0 else fi
    x = d + west
    fj = np.floor((x - west) / res)
    inside = fi >= 0.0 and fi < n_lat and fj < n_lon
    return fi * n_lon + fj if inside else -1.0


_CENTRE_BLOCK = 512  # pixels per block of the centre kernel
_WRAP = -2.0  # cell of a centre whose longitude needs the modulo (west of west or 360° past it)


@_jit
def _centre_cells(
    lat: Any,
    lon: Any,
    value: Any,
    sigma: Any,
    b0: int,
    nb: int,
    inverse_variance: bool,
    south: float,
    west: float,
    res: float,
    n_lat: int,
    n_lon: int,
    north_pole_row: bool,
    g: Any,
) -> None:
    """The vectorised pass of :func:`centre_kernel` over pixels b0 … b0 + nb − 1 (degrees): each pixel's
    cell (row 0 of ``g``; −1 to skip it, _WRAP for the scalar pass), w, w·value and w²σ² (rows 1–3).
    Straight-line code with selects and unsigned indices, so that LLVM vectorises the loop."""
    for t in range(nb):
        p = np.uint64(b0 + t)
        la = np.float64(lat[p])
        lo = np.float64(lon[p])
        v = np.float64(value[p])
        s = np.float64(sigma[p])
        finite = math.isfinite(la) and math.isfinite(lo) and math.isfinite(v) and math.isfinite(s)
        d = lo - west
        cell = _centre_cell(la, d, south, west, res, n_lat, n_lon, north_pole_row)
        cell = cell if 0.0 <= d < 360.0 else _WRAP  # d % 360 is d itself in range: no modulo here
        w = 1.0 / (s * s) if inverse_variance else 1.0
        weighted = s > 0.0 or not inverse_variance
        g[np.uint64(t)] = cell if finite and weighted else -1.0
        g[np.uint64(_CENTRE_BLOCK + t)] = w
        g[np.uint64(2 * _CENTRE_BLOCK + t)] = w * v
        g[np.uint64(3 * _CENTRE_BLOCK + t)] = w * w * s * s


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
    sums: Any,
) -> int:
    """Add each pixel to the cell containing its centre (:func:`_centre_cell`). lat/lon/value/sigma: dims
    (pixel,), degrees; pixels with a non-finite input, or σ ≤ 0 when inverse-variance weighted, are
    skipped. In blocks of _CENTRE_BLOCK: cells and weights by a vectorised pass (:func:`_centre_cells`), then
    the sums, in pixel order. Returns the pixels binned."""
    n = lat.shape[0]
    g = np.empty(4 * _CENTRE_BLOCK)
    used = 0
    for b0 in range(0, n, _CENTRE_BLOCK):
        nb = min(_CENTRE_BLOCK, n - b0)
        _centre_cells(
            lat, lon, value, sigma, b0, nb, inverse_variance, south, west, res, n_lat, n_lon, north_pole_row, g
        )  # fmt: skip
        for t in range(nb):
            cell = g[t]
            if cell == _WRAP:  # rare: the same cell arithmetic with the longitude wrapped
                d = (np.float64(lon[b0 + t]) - west) % 360.0
                cell = _centre_cell(
                    np.float64(lat[b0 + t]), d, south, west, res, n_lat, n_lon, north_pole_row
                )
            if cell < 0.0:
                continue
            c = np.uint64(cell)
            sums[c, 0] += g[_CENTRE_BLOCK + t]
            sums[c, 1] += g[2 * _CENTRE_BLOCK + t]
            sums[c, 2] += g[3 * _CENTRE_BLOCK + t]
            sums[c, 3] += 1.0
            used += 1
    return used


@_inline
def _lower_left_area(xs: Any, ys: Any, n: int, a: float, b: float, c: float) -> float:
    """Signed area of polygon ∩ {x ≤ a, y ≤ b} (counter-clockwise positive) by Green's theorem:
    −∮ 1[x ≤ a]·(min(y, b) − c) dx, edge by edge in closed form; ``c`` (any constant) limits rounding."""
    total = 0.0
    for k in range(n):
        k2 = k + 1 if k + 1 < n else 0
        x1 = xs[k]
        x2 = xs[k2]
        if x1 == x2:
            continue
        if x1 < x2:
            lo, hi, ylo, yhi, sgn = x1, x2, ys[k], ys[k2], 1.0
        else:
            lo, hi, ylo, yhi, sgn = x2, x1, ys[k2], ys[k], -1.0
        if lo >= a:
            continue
        if hi > a:
            yhi = ylo + (a - lo) * (yhi - ylo) / (hi - lo)
            hi = a
        if ylo <= b and yhi <= b:
            mean = 0.5 * (ylo + yhi)
        elif ylo >= b and yhi >= b:
            mean = b
        else:
            t = (b - ylo) / (yhi - ylo)
            below = t * 0.5 * (ylo + b) + (1.0 - t) * b  # rising through b
            above = t * b + (1.0 - t) * 0.5 * (b + yhi)  # falling through b
            mean = below if ylo < b else above
        total += sgn * (hi - lo) * (mean - c)
    return -total


@_inline
def _sin_step(d: float, s0: float, c0: float) -> float:
    """sin(a + d) − sin(a) from s0 = sin a, c0 = cos a, by series (reciprocal constants: no divisions) to
    d¹⁰: error < 1e-18 for |d| ≤ 0.11 rad (6.3°)."""
    d2 = d * d
    sd = d * (1.0 - d2 * _R6 * (1.0 - d2 * _R20 * (1.0 - d2 * _R42 * (1.0 - d2 * _R72))))
    cdm1 = -d2 * 0.5 * (1.0 - d2 * _R12 * (1.0 - d2 * _R30 * (1.0 - d2 * _R56)))  # cos d − 1
    return s0 * cdm1 + c0 * sd


@_inline
def _add_cell(sums: Any, c: int, f: float, w: float, wv: float, wss: float) -> None:
    """Add share f of a pixel (weight w, w·value wv, w²σ² wss) to cell ``c`` ≥ 0 of ``sums`` (cell × 4, flat):
    f·w, f·wv, f²·wss and a count of 1 (:func:`_add_share`)."""
    _add_share(sums, np.uint64(4) * np.uint64(c), f, f * f, w, wv, wss)


@_inline
def _slopes(dx: float, dy: float) -> tuple[float, float]:
    """An edge's slope dy/dx and inverse slope dx/dy with one division; 0 where undefined (the edge is
    then parallel to the cuts that would use it, and the 0 is multiplied by 0)."""
    d = dx * dy
    if d != 0.0:
        r = 1.0 / d
        return dy * dy * r, dx * dx * r
    return 0.0, 0.0


@_inline
def _edge_cut(
    xa: float, ya: float, xb: float, yb: float, k: float, q: float, a: float, b: float
) -> tuple[float, float]:
    """One edge (xa, ya) → (xb, yb) (slope k, inverse slope q) of a closed polygon: its terms (×2,
    counter-clockwise positive) of the polygon's area left of x = a, and of the part of that below y = b.
    The edge is clipped to x ≤ a by sliding its ends along it onto x = a: −∫ y dx over the clipped edges
    is the area left of a (the closing parts on x = a add nothing). Clipped again to y ≤ b the same way,
    ∫ (x − a) dy over those is the part below b (the closing parts on y = b add nothing, those on x = a
    add a·Δy, and Σ Δy = 0). No branches, no divisions; for a ≥ every x the first term is the edge's term
    of the whole area, bit for bit."""
    xa1 = min(xa, a)
    xb1 = min(xb, a)
    ya1 = ya + (xa1 - xa) * k
    yb1 = yb + (xb1 - xb) * k
    ya2 = min(ya1, b)
    yb2 = min(yb1, b)
    left = (xa1 - xb1) * (ya1 + yb1)
    low = (yb2 - ya2) * ((xa1 + (ya2 - ya1) * q - a) + (xb1 + (yb2 - yb1) * q - a))
    return left, low


@_inline
def _column_edge(m: int, last: float) -> float:
    """The cut at the east edge of column m of a strip pixel whose last column is ``last`` (from its first):
    m + 1, or for the last column one further east (the pixel's vertices may lie a rounding error past
    its last column's edge), so that the last cut clips nothing and gives the whole area."""
    return m + 1.0 if m < last else last + 2.0


@_inline
def _cut_areas(
    x0: float,
    x1: float,
    x2: float,
    x3: float,
    y0: float,
    y1: float,
    y2: float,
    y3: float,
    k0: float,
    k1: float,
    k2: float,
    k3: float,
    q0: float,
    q1: float,
    q2: float,
    q3: float,
    a: float,
    b: float,
) -> tuple[float, float]:
    """A quadrilateral's area left of x = a and its part below y = b (both ×2; :func:`_edge_cut`)."""
    l0, w0 = _edge_cut(x0, y0, x1, y1, k0, q0, a, b)
    l1, w1 = _edge_cut(x1, y1, x2, y2, k1, q1, a, b)
    l2, w2 = _edge_cut(x2, y2, x3, y3, k2, q2, a, b)
    l3, w3 = _edge_cut(x3, y3, x0, y0, k3, q3, a, b)
    return (l0 + l1) + (l2 + l3), (w0 + w1) + (w2 + w3)


@_inline
def _wrap(d: float) -> float:
    """A longitude difference brought into [-180, 180) (no branch: d itself when already there). Multiplied
    by 1/360 rather than divided (divisions are the slow part of the vectorised pass 1): the floor differs
    only within a rounding error below a multiple of 360, where the result is ±180 either way."""
    return d if -180.0 <= d < 180.0 else d - 360.0 * np.floor((d + 180.0) * _R360)


@_fjit
def _polygon_cells(
    lo0: float,
    u1: float,
    u2: float,
    u3: float,
    la0: float,
    la1: float,
    la2: float,
    la3: float,
    winding: float,
    pole: float,
    polar: bool,
    lat_min: float,
    lat_max: float,
    xmin: float,
    xmax: float,
    shift: float,
    i0: int,
    i1: int,
    j0: int,
    j1: int,
    w: float,
    wv: float,
    wss: float,
    south: float,
    res: float,
    n_lat: int,
    n_lon: int,
    px: Any,
    py: Any,
    y_edge: Any,
    c_edge: Any,
    prev: Any,
    cur: Any,
    cut_y: Any,
    sums: Any,
) -> int:
    """The general case of :func:`footprint_kernel` for one pixel (around a pole, over more than 2 rows or
    5° of latitude, partly outside the grid's rows, or of no area): the polygon's area in each cell by
    inclusion–exclusion of its areas below-left of the cell corners. Kept out of the kernel's loop (a call
    with arrays costs reference counting, paid here by a few pixels only). Returns 1 if the pixel reached a
    cell."""
    n360 = round(360.0 / res)
    inv_res = 1.0 / res
    deg = math.pi / 180.0
    px[0], px[1], px[2], px[3] = lo0, u1, u2, u3
    py[0], py[1], py[2], py[3] = la0, la1, la2, la3
    nv = 4
    if polar:
        px[4], py[4] = lo0 + winding, la0
        px[5], py[5] = lo0 + winding, pole
        px[6], py[6] = lo0, pole
        nv = 7
    # y = sin(latitude), relative to y_off (the sine of a row edge below the pixel, its first corner's, or 0)
    if polar or lat_max - lat_min > 5.0:
        y_off = 0.0
        for k in range(nv):
            py[k] = math.sin(py[k] * deg)
    else:
        if res <= 1.0 and 0 <= i0 <= n_lat:
            ref, y_off, c0 = south + i0 * res, y_edge[i0], c_edge[i0]
        else:
            ref, y_off, c0 = la0, math.sin(la0 * deg), math.cos(la0 * deg)
        for k in range(nv):
            py[k] = _sin_step((py[k] - ref) * deg, y_off, c0)
    for k in range(nv):
        px[k] = (px[k] - shift) * inv_res - j0  # column units from the pixel's first column
    ymin = 2.0
    for k in range(nv):
        ymin = min(ymin, py[k])
    area = _lower_left_area(px, py, nv, np.inf, np.inf, ymin)
    if not abs(area) > 0.0:
        # a degenerate polygon (a line or a point): the whole pixel goes to its centre's cell
        ci = math.floor(((la0 + la1 + la2 + la3) * 0.25 - south) * inv_res)
        cj = math.floor(0.5 * (xmin + xmax)) % n360
        if ci < 0 or ci >= n_lat or cj >= n_lon:
            return 0
        _add_cell(sums, ci * n_lon + cj, 1.0, w, wv, wss)
        return 1
    # area of each cell = inclusion–exclusion of the areas below-left of the cell's corners, swept
    # column by column (prev: the column's west edge, cur: its east edge), rows ia..ib
    reached = False
    ia = max(i0, 0)
    ib = min(i1, n_lat - 1)
    nr = ib - ia + 1
    for m in range(nr + 1):
        prev[m] = 0.0
        cut_y[m] = y_edge[ia + m] - y_off if ia + m <= n_lat else np.inf
    if i1 <= ib:  # nothing above the grid: the top cut is open
        cut_y[nr] = np.inf
    nj = j1 - j0 + 1
    for k in range(1, nj + 1):
        cut_x = float(k) if k < nj else np.inf
        cur[0] = 0.0 if i0 >= 0 else _lower_left_area(px, py, nv, cut_x, cut_y[0], ymin)
        for m in range(1, nr + 1):
            if k == nj and m == nr and cut_y[nr] == np.inf:
                cur[m] = area
            else:
                cur[m] = _lower_left_area(px, py, nv, cut_x, cut_y[m], ymin)
        jj = (j0 + k - 1) % n360
        if jj < n_lon:
            for m in range(nr):
                f = (cur[m + 1] - prev[m + 1] - cur[m] + prev[m]) / area
                if f > 1e-12:
                    _add_cell(sums, (ia + m) * n_lon + jj, f, w, wv, wss)
                    reached = True
        for m in range(nr + 1):
            prev[m] = cur[m]
    return 1 if reached else 0


# Pixels are binned in blocks of _BLOCK, in five passes over a block through the scratch array ``g`` (row r
# holds one value per pixel t of the block, at g[r * _ROW + t]): passes 1, 3 and 4 are straight-line loops
# that LLVM vectorises (4 doubles per AVX2 instruction, 8 with AVX-512: flat unsigned indices, selects, no
# branches, one array written); pass 2 gathers from the sine tables, pass 5 adds the shares to the cells.
_BLOCK = 256
_ROW = _BLOCK + 8  # row stride: not a power of two, so that rows do not map to the same cache sets
_SKIP, _ONE, _STRIP, _GENERAL = 0.0, 1.0, 2.0, 3.0  # pixel classes (row _CLS)
(_CLS, _W, _WV, _WSS, _I0, _I1, _J0, _J1, _X0, _X1, _X2, _X3, _Y0, _Y1, _Y2, _Y3, _K0, _K1, _K2, _K3, _Q0, _Q1,
 _Q2, _Q3, _INV_AREA, _YC, _Y_OFF, _C0, _Y_NEXT, _LEFT, _LOW, _PF, _ROWS) = range(33)  # fmt: skip
_SLOTS = 12  # columns of strip pixels done by the vectorised pass; further columns are done one by one


@_inline
def _pixel_setup(
    lat_f: Any,
    lon_f: Any,
    value: Any,
    sigma: Any,
    p: Any,
    inverse_variance: bool,
    strips: bool,
    south: float,
    west: float,
    res: float,
    n_lat: int,
) -> tuple[
    float,
    float,
    float,
    float,
    float,
    float,
    float,
    float,
    float,
    float,
    float,
    float,
    float,
    float,
    float,
    float,
    float,
    float,
    float,
    float,
    float,
    float,
    float,
]:
    """Pixel p (unsigned; lat_f/lon_f flat (pixel × 4 corners), degrees): its class, weight w, w·value,
    w²σ², rows i0…i1 and columns j0…j1 spanned (floats), corners (the longitudes unwrapped corner to corner:
    lo0, u1, u2, u3; la0 … la3), the winding (±360 around a pole, else 0) and that pole's latitude, its
    latitude range, its column range in column units and the longitude shift that puts its westernmost
    vertex in [west, west + 360). Straight-line code (selects, no branches) for the vectorised pass 1; the
    general path calls it again for its few pixels, which is cheaper than storing the values it alone
    needs for every pixel."""
    inv_res = 1.0 / res
    top_pole = south + n_lat * res >= 90.0
    fine = res <= 1.0
    c = np.uint64(4) * p
    v = np.float64(value[p])
    s = np.float64(sigma[p])
    la0 = np.float64(lat_f[c])
    la1 = np.float64(lat_f[c + np.uint64(1)])
    la2 = np.float64(lat_f[c + np.uint64(2)])
    la3 = np.float64(lat_f[c + np.uint64(3)])
    lo0 = np.float64(lon_f[c])
    lo1 = np.float64(lon_f[c + np.uint64(1)])
    lo2 = np.float64(lon_f[c + np.uint64(2)])
    lo3 = np.float64(lon_f[c + np.uint64(3)])
    # one test for all: a NaN or inf anywhere makes the sum non-finite
    finite = math.isfinite(v + s + la0 + la1 + la2 + la3 + lo0 + lo1 + lo2 + lo3)
    w = 1.0 / (s * s) if inverse_variance else 1.0
    weighted = s > 0.0 or not inverse_variance
    lat_min: float = min(min(la0, la1), min(la2, la3))
    lat_max: float = max(max(la0, la1), max(la2, la3))
    xmin = min(min(lo0, lo1), min(lo2, lo3))
    xmax = max(max(lo0, lo1), max(lo2, lo3))
    # no step crosses ±180 (nearly all pixels): the unwrapped longitudes are the longitudes; else
    # unwrap corner to corner (each step in [-180, 180)); around a pole the winding is ±360
    plain = xmax - xmin < 180.0
    v1 = lo0 + _wrap(lo1 - lo0)
    v2 = v1 + _wrap(lo2 - v1)
    v3 = v2 + _wrap(lo3 - v2)
    winding = 0.0 if plain else v3 + _wrap(lo0 - v3) - lo0
    u1 = lo1 if plain else v1
    u2 = lo2 if plain else v2
    u3 = lo3 if plain else v3
    xmin = xmin if plain else min(min(lo0, u1), min(u2, u3))
    xmax = xmax if plain else max(max(lo0, u1), max(u2, u3))
    polar = abs(winding) > 180.0
    # a pixel around a pole is closed along it: the polygon spans 360° of longitude
    pole = (90.0 if la0 + la1 + la2 + la3 > 0 else -90.0) if polar else 0.0
    xmin = min(xmin, lo0 + winding) if polar else xmin
    xmax = max(xmax, lo0 + winding) if polar else xmax
    lat_min = min(lat_min, pole) if polar else lat_min
    lat_max = max(lat_max, pole) if polar else lat_max
    # shift so the westernmost vertex lies in [west, west + 360); to column units
    d = xmin - west
    shift = west if 0.0 <= d < 360.0 else west + np.floor(d * _R360) * 360.0  # any column is wrapped later
    xmin = (xmin - shift) * inv_res
    xmax = (xmax - shift) * inv_res
    i0 = np.floor((lat_min - south) * inv_res)
    i1 = np.floor((lat_max - south) * inv_res)
    i1 = min(i1, n_lat - 1.0) if lat_max >= 90.0 and top_pole else i1
    j0 = np.floor(xmin)
    j1 = np.floor(xmax)
    j1 = j1 - 1.0 if xmax == j1 and j1 > j0 else j1  # ending exactly on an edge: not in the next column
    i1 = i1 - 1.0 if lat_max == south + i1 * res and i1 > i0 else i1
    # strip pixels: ≤ 2 rows, not polar, inside the grid's rows, fine grids
    strip = strips and fine and not polar and i1 - i0 <= 1.0 and i0 >= 0.0 and i1 < n_lat
    strip = strip and lat_max - lat_min <= 5.0
    kind = _STRIP if strip else _GENERAL
    kind = _ONE if i0 == i1 and j0 == j1 else kind
    kind = _SKIP if not (finite and weighted) or i1 < 0.0 or i0 >= n_lat else kind
    return (
        kind, w, w * v, w * w * s * s, i0, i1, j0, j1, lo0, u1, u2, u3, la0, la1, la2, la3, winding, pole,
        lat_min, lat_max, xmin, xmax, shift,
    )  # fmt: skip


@_fjit
def _pixel_geometry(
    lat_f: Any,
    lon_f: Any,
    value: Any,
    sigma: Any,
    b0: int,
    nb: int,
    inverse_variance: bool,
    strips: bool,
    south: float,
    west: float,
    res: float,
    n_lat: int,
    n_lon: int,
    g: Any,
) -> None:
    """Pass 1 of a block (pixels b0 … b0 + nb − 1): each pixel's class, weights, rows and columns
    (:func:`_pixel_setup`), its first cell (for the prefetch in pass 5), and for strip pixels their
    vertices in column units from column j0 and their latitudes relative to the row edge i0 (degrees →
    radians). Vectorised: values of pixels of another class are computed and ignored."""
    inv_res = 1.0 / res
    deg = math.pi / 180.0
    n_cells = float((n_lat - 1) * n_lon)
    for t in range(nb):
        (kind, w, wv, wss, i0, i1, j0, j1, lo0, u1, u2, u3, la0, la1, la2, la3, _, _, _, _, _, _,
         shift) = _pixel_setup(
            lat_f, lon_f, value, sigma, np.uint64(b0 + t), inverse_variance, strips, south, west, res, n_lat
        )  # fmt: skip
        ref = south + i0 * res
        g[_CLS * _ROW + t] = kind
        g[_W * _ROW + t] = w
        g[_WV * _ROW + t] = wv
        g[_WSS * _ROW + t] = wss
        g[_I0 * _ROW + t] = i0
        g[_I1 * _ROW + t] = i1
        g[_J0 * _ROW + t] = j0
        g[_J1 * _ROW + t] = j1
        g[_X0 * _ROW + t] = (lo0 - shift) * inv_res - j0
        g[_X1 * _ROW + t] = (u1 - shift) * inv_res - j0
        g[_X2 * _ROW + t] = (u2 - shift) * inv_res - j0
        g[_X3 * _ROW + t] = (u3 - shift) * inv_res - j0
        g[_Y0 * _ROW + t] = (la0 - ref) * deg
        g[_Y1 * _ROW + t] = (la1 - ref) * deg
        g[_Y2 * _ROW + t] = (la2 - ref) * deg
        g[_Y3 * _ROW + t] = (la3 - ref) * deg
        first = i0 * n_lon + j0  # the pixel's first cell (unwrapped), for the prefetch in pass 5
        g[_PF * _ROW + t] = first if 0.0 <= first < n_cells else 0.0


@_fjit
def _strip_geometry(nb: int, g: Any) -> None:
    """Pass 3 of a block: for strip pixels, y = sin(latitude) relative to the row edge i0 (series from the
    tabulated sine and cosine of that edge), each edge's slope and inverse slope, 1 / (2 × area), and the
    row cut between the two rows (∞ for one row). A strip pixel of no area becomes general. Vectorised."""
    for t in range(nb):
        y_off = g[_Y_OFF * _ROW + t]
        c0 = g[_C0 * _ROW + t]
        x0 = g[_X0 * _ROW + t]
        x1 = g[_X1 * _ROW + t]
        x2 = g[_X2 * _ROW + t]
        x3 = g[_X3 * _ROW + t]
        y0 = _sin_step(g[_Y0 * _ROW + t], y_off, c0)
        y1 = _sin_step(g[_Y1 * _ROW + t], y_off, c0)
        y2 = _sin_step(g[_Y2 * _ROW + t], y_off, c0)
        y3 = _sin_step(g[_Y3 * _ROW + t], y_off, c0)
        k0, q0 = _slopes(x1 - x0, y1 - y0)
        k1, q1 = _slopes(x2 - x1, y2 - y1)
        k2, q2 = _slopes(x3 - x2, y3 - y2)
        k3, q3 = _slopes(x0 - x3, y0 - y3)
        # grouped as in _cut_areas: the last column's cut gives this area bit for bit
        area = ((x0 - x1) * (y0 + y1) + (x1 - x2) * (y1 + y2)) + (
            (x2 - x3) * (y2 + y3) + (x3 - x0) * (y3 + y0)
        )
        kind = g[_CLS * _ROW + t]
        # degenerate (no area): the general case puts it in its centre's cell
        g[_CLS * _ROW + t] = _GENERAL if kind == _STRIP and not abs(area) > 0.0 else kind
        g[_Y0 * _ROW + t] = y0
        g[_Y1 * _ROW + t] = y1
        g[_Y2 * _ROW + t] = y2
        g[_Y3 * _ROW + t] = y3
        g[_K0 * _ROW + t] = k0
        g[_K1 * _ROW + t] = k1
        g[_K2 * _ROW + t] = k2
        g[_K3 * _ROW + t] = k3
        g[_Q0 * _ROW + t] = q0
        g[_Q1 * _ROW + t] = q1
        g[_Q2 * _ROW + t] = q2
        g[_Q3 * _ROW + t] = q3
        g[_INV_AREA * _ROW + t] = 1.0 / area  # the factor 1/2 of the areas cancels in the shares
        two = g[_I1 * _ROW + t] > g[_I0 * _ROW + t]
        g[_YC * _ROW + t] = g[_Y_NEXT * _ROW + t] - y_off if two else np.inf
        g[_LEFT * _ROW + t] = 0.0
        g[_LOW * _ROW + t] = 0.0


@_fjit
def _column_shares(nb: int, columns: int, g: Any, shares: Any) -> None:
    """Pass 4 of a block: the shares of strip pixels in their first ``columns`` (≤ _SLOTS) columns, one
    column at a time over all pixels (vectorised): the areas left of the column's east edge and below the
    row cut (:func:`_cut_areas`) minus those of its west edge, over the pixel's area, into ``shares``
    (slot m: rows 2m and 2m + 1 of _BLOCK values, the lower and the upper row's share in column m; a
    separate array, so that LLVM sees these stores apart from the loads from ``g``); rows _LEFT and _LOW
    of ``g`` keep the areas at the last edge done."""
    for m in range(columns):
        lower = 2 * m * _ROW
        upper = lower + _ROW
        for t in range(nb):
            yc = g[_YC * _ROW + t]
            left, low = _cut_areas(
                g[_X0 * _ROW + t], g[_X1 * _ROW + t], g[_X2 * _ROW + t], g[_X3 * _ROW + t],
                g[_Y0 * _ROW + t], g[_Y1 * _ROW + t], g[_Y2 * _ROW + t], g[_Y3 * _ROW + t],
                g[_K0 * _ROW + t], g[_K1 * _ROW + t], g[_K2 * _ROW + t], g[_K3 * _ROW + t],
                g[_Q0 * _ROW + t], g[_Q1 * _ROW + t], g[_Q2 * _ROW + t], g[_Q3 * _ROW + t],
                _column_edge(m, g[_J1 * _ROW + t] - g[_J0 * _ROW + t]), yc,
            )  # fmt: skip
            low = low if yc < np.inf else left  # one row: all of it is in the lower row
            inv_area = g[_INV_AREA * _ROW + t]
            d_low = low - g[_LOW * _ROW + t]
            shares[lower + t] = d_low * inv_area
            shares[upper + t] = ((left - g[_LEFT * _ROW + t]) - d_low) * inv_area
            g[_LEFT * _ROW + t] = left
            g[_LOW * _ROW + t] = low


@_fjit
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
    sums: Any,
    strips: bool = True,
) -> int:
    """Spread each pixel over the cells its corner polygon covers, by area. lat_b/lon_b: (pixel, corner)
    degrees in S5P corner order (4 corners). Returns the number of pixels that reached at least one cell.
    ``strips=False`` sends every pixel through the general case (the reference the strip path is tested
    against)."""
    n = lat_b.shape[0]
    lat_f = np.ascontiguousarray(lat_b).reshape(-1)
    lon_f = np.ascontiguousarray(lon_b).reshape(-1)
    n360 = round(360.0 / res)
    deg = math.pi / 180.0
    # sin(latitude) of the grid's row edges: rows are bands between consecutive values
    y_edge = np.empty(n_lat + 1)
    c_edge = np.empty(n_lat + 1)
    for i in range(n_lat + 1):
        y_edge[i] = math.sin((south + i * res) * deg)
        c_edge[i] = math.cos((south + i * res) * deg)
    px = np.empty(8)
    py = np.empty(8)
    prev = np.empty(n_lat + 2)
    cur = np.empty(n_lat + 2)
    cut_y = np.empty(n_lat + 2)
    g = np.empty(_ROWS * _ROW)
    shares = np.empty(2 * _SLOTS * _ROW)
    flat = sums.reshape(-1)
    used = 0
    for b0 in range(0, n, _BLOCK):
        nb = min(_BLOCK, n - b0)
        _pixel_geometry(
            lat_f, lon_f, value, sigma, b0, nb, inverse_variance, strips, south, west, res, n_lat, n_lon, g
        )
        # pass 2: the tabulated sine and cosine of each strip pixel's row edge (a gather: its own loop, so
        # that the other passes need no alias checks against the tables and vectorise), and the most
        # columns of a strip pixel
        columns = 0
        for t in range(nb):
            i = 0
            if g[_CLS * _ROW + t] == _STRIP:
                i = int(g[_I0 * _ROW + t])
                columns = max(columns, int(g[_J1 * _ROW + t] - g[_J0 * _ROW + t]) + 1)
            g[_Y_OFF * _ROW + t] = y_edge[i]
            g[_C0 * _ROW + t] = c_edge[i]
            g[_Y_NEXT * _ROW + t] = y_edge[i + 1]
        _strip_geometry(nb, g)
        _column_shares(nb, min(columns, _SLOTS), g, shares)
        # pass 5: each pixel's shares into its cells; the first two cache lines of both rows of the pixel 16
        # ahead are prefetched meanwhile (without, this pass waited on the cells' cache lines: 31 against
        # 24 ns per pixel)
        for t in range(nb):
            c = np.uint64(4) * np.uint64(g[_PF * _ROW + min(t + 16, nb - 1)])
            _prefetch(flat, c)
            _prefetch(flat, c + np.uint64(8))  # its next cache line (a cell may straddle two)
            _prefetch(flat, c + np.uint64(4 * n_lon))
            _prefetch(flat, c + np.uint64(4 * n_lon + 8))
            kind = g[_CLS * _ROW + t]
            if kind == _SKIP:
                continue
            w = g[_W * _ROW + t]
            wv = g[_WV * _ROW + t]
            wss = g[_WSS * _ROW + t]
            i0 = int(g[_I0 * _ROW + t])
            j0 = int(g[_J0 * _ROW + t])
            jw = j0 if 0 <= j0 < n360 else j0 % n360  # the first column, wrapped
            if kind == _ONE:  # one cell: the whole pixel goes there
                if i0 < 0 or jw >= n_lon:
                    continue
                _add_cell(flat, i0 * n_lon + jw, 1.0, w, wv, wss)
                used += 1
            elif kind == _STRIP:
                # the strip path (≤ 2 rows): shares of the lower and upper row in each column, from the
                # vectorised slots; columns beyond them (wide pixels near the poles) one by one after
                nj = int(g[_J1 * _ROW + t]) - j0 + 1
                low_row = i0 * n_lon
                reached = False
                jj = jw  # column of slot m, wrapped without a division per cell
                tu = np.uint64(t)
                for m in range(min(nj, _SLOTS)):
                    k = np.uint64(2 * _ROW) * np.uint64(m) + tu
                    f_low = shares[k]
                    f_up = shares[k + np.uint64(_ROW)]  # exactly 0 for a pixel in one row
                    if jj < n_lon:
                        if f_low > 1e-12:
                            _add_cell(flat, low_row + jj, f_low, w, wv, wss)
                            reached = True
                        if f_up > 1e-12:
                            _add_cell(flat, low_row + n_lon + jj, f_up, w, wv, wss)
                            reached = True
                    jj = jj + 1 if jj + 1 < n360 else 0
                if nj > _SLOTS:
                    yc = g[_YC * _ROW + t]
                    two = yc < np.inf
                    left_prev = g[_LEFT * _ROW + t]
                    low_prev = g[_LOW * _ROW + t]
                    inv_area = g[_INV_AREA * _ROW + t]
                    for m in range(_SLOTS, nj):
                        left, low = _cut_areas(
                            g[_X0 * _ROW + t], g[_X1 * _ROW + t], g[_X2 * _ROW + t],
                            g[_X3 * _ROW + t], g[_Y0 * _ROW + t], g[_Y1 * _ROW + t],
                            g[_Y2 * _ROW + t], g[_Y3 * _ROW + t], g[_K0 * _ROW + t],
                            g[_K1 * _ROW + t], g[_K2 * _ROW + t], g[_K3 * _ROW + t],
                            g[_Q0 * _ROW + t], g[_Q1 * _ROW + t], g[_Q2 * _ROW + t],
                            g[_Q3 * _ROW + t], _column_edge(m, nj - 1.0), yc,
                        )  # fmt: skip
                        low = low if two else left
                        f_low = (low - low_prev) * inv_area
                        f_up = ((left - left_prev) - (low - low_prev)) * inv_area
                        left_prev = left
                        low_prev = low
                        if jj < n_lon:
                            if f_low > 1e-12:
                                _add_cell(flat, low_row + jj, f_low, w, wv, wss)
                                reached = True
                            if f_up > 1e-12:
                                _add_cell(flat, low_row + n_lon + jj, f_up, w, wv, wss)
                                reached = True
                        jj = jj + 1 if jj + 1 < n360 else 0
                if reached:
                    used += 1
            else:
                (_, _, _, _, _, i1, _, j1, lo0, u1, u2, u3, la0, la1, la2, la3, winding, pole, lat_min, lat_max,
                 xmin, xmax, shift) = _pixel_setup(
                    lat_f, lon_f, value, sigma, np.uint64(b0 + t), inverse_variance, strips, south, west,
                    res, n_lat,
                )  # fmt: skip
                used += _polygon_cells(
                    lo0, u1, u2, u3, la0, la1, la2, la3, winding, pole, abs(winding) > 180.0, lat_min, lat_max,
                    xmin, xmax, shift, i0, int(i1), j0, int(j1), w, wv, wss, south, res, n_lat, n_lon, px, py,
                    y_edge, c_edge, prev, cur, cut_y, flat,
                )  # fmt: skip
    return used


@_jit
def fields_kernel(sums: Any, mean: Any, unc: Any, count: Any, weight: Any) -> None:
    """The per-cell fields from ``sums`` (cell, 4), into flat float32/int32 arrays (cell,): mean Σfwv/Σfw,
    uncertainty √Σ(fw)²σ² / Σfw, count, weight Σfw (in double precision, then rounded); NaN and 0 where no
    pixel reached the cell."""
    for c in range(sums.shape[0]):
        n = sums[c, 3]
        if n > 0:
            sw = sums[c, 0]
            mean[c] = sums[c, 1] / sw
            unc[c] = math.sqrt(sums[c, 2]) / sw
            count[c] = int(n)
            weight[c] = sw
        else:
            mean[c] = np.nan
            unc[c] = np.nan
            count[c] = 0
            weight[c] = np.nan


def warm_up() -> None:
    """Compile both kernels for float32 and float64 inputs (numba caches the result on disk)."""
    for dtype in (np.float32, np.float64):
        a1 = np.zeros(1, dtype=dtype)
        a2 = np.zeros((1, 4), dtype=dtype)
        sums = np.zeros((1, 4))
        centre_kernel(a1, a1, a1, a1, True, -90.0, -180.0, 360.0, 1, 1, True, sums)
        footprint_kernel(a2, a2, a1, a1, True, -90.0, -180.0, 360.0, 1, 1, sums)
    f32, i32 = np.empty(1, dtype=np.float32), np.empty(1, dtype=np.int32)
    fields_kernel(np.zeros((1, 4)), f32, f32, i32, f32)
