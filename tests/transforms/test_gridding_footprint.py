"""Footprint (area-weighted corner polygon) binning, the compiled centre kernel against a plain numpy
reference, quality rules: exact values on hand-made pixels, antimeridian, poles, empty and all-fill input,
regional grids, and conservation of the weighted sum (hypothesis)."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

from transforms import footprint
from transforms.errors import InputError
from transforms.grid import GridSpec
from transforms.gridding import (
    GridAccumulator,
    QualityRule,
    bin_centres,
    bin_footprints,
    mask_observations,
    quality_rule,
)

DLAT = np.array([-0.5, -0.5, 0.5, 0.5])
DLON = np.array([-0.5, 0.5, 0.5, -0.5])


def _pixels(lat_b, lon_b, value, sigma=None, qa=None) -> xr.Dataset:
    lat_b = np.asarray(lat_b, dtype=float).reshape(-1, 4)
    lon_b = np.asarray(lon_b, dtype=float).reshape(-1, 4)
    n = lat_b.shape[0]
    return xr.Dataset(
        {
            "latitude": ("pixel", lat_b.mean(axis=1)),
            "longitude": ("pixel", lon_b[:, 0]),
            "latitude_bounds": (("pixel", "corner"), lat_b),
            "longitude_bounds": (("pixel", "corner"), lon_b),
            "value": ("pixel", np.asarray(value, dtype=float)),
            "uncertainty": ("pixel", np.asarray(sigma if sigma is not None else [1.0] * n, dtype=float)),
            "qa": ("pixel", np.asarray(qa if qa is not None else [1.0] * n, dtype=float)),
        }
    )


def _box(lat0: float, lat1: float, lon0: float, lon1: float) -> tuple[list[float], list[float]]:
    return [lat0, lat0, lat1, lat1], [lon0, lon1, lon1, lon0]


def _band_area(lat0: float, lat1: float) -> float:
    return float(np.sin(np.radians(lat1)) - np.sin(np.radians(lat0)))


GRID = GridSpec(1.0, (0.0, 0.0, 4.0, 3.0))


def test_a_pixel_filling_one_cell_gives_that_cell_exactly() -> None:
    lat_b, lon_b = _box(1.0, 2.0, 2.0, 3.0)
    f = bin_footprints(_pixels(lat_b, lon_b, [7.0], [2.0]), GRID)
    assert f["count"].values.tolist() == [[0, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]]
    assert f["mean"].values[1, 2] == 7.0
    assert f["uncertainty"].values[1, 2] == 2.0
    assert f["weight"].values[1, 2] == 0.25
    assert f.attrs["binning"] == "footprint_area_weighted"


def test_a_pixel_over_four_cells_is_split_by_area_on_the_sphere() -> None:
    # pixel 0.5..1.5 N, 0.5..1.5 E: a quarter of its longitude span in each column, latitude split by sin(lat)
    lat_b, lon_b = _box(0.5, 1.5, 0.5, 1.5)
    f = bin_footprints(_pixels(lat_b, lon_b, [4.0]), GRID, weighting="plain")
    total = _band_area(0.5, 1.5)
    south, north = _band_area(0.5, 1.0) / total / 2, _band_area(1.0, 1.5) / total / 2
    np.testing.assert_allclose(f["weight"].values[:2, :2], [[south, south], [north, north]], rtol=1e-6)
    assert f["count"].values[:2, :2].tolist() == [[1, 1], [1, 1]]
    np.testing.assert_array_equal(f["mean"].values[:2, :2], 4.0)  # one pixel: its value everywhere it lands
    # one pixel's uncertainty is not reduced by spreading it: sqrt((fσ)²)/f = σ
    np.testing.assert_allclose(f["uncertainty"].values[:2, :2], 1.0, rtol=1e-6)


def test_two_pixels_sharing_a_cell_are_weighted_by_area_and_inverse_variance() -> None:
    a = _box(0.0, 1.0, 0.0, 1.0)  # fills cell (0, 0)
    b = _box(0.0, 1.0, 0.5, 1.5)  # half in (0, 0), half in (0, 1)
    obs = _pixels([a[0], b[0]], [a[1], b[1]], [1.0, 4.0], [1.0, 0.5])
    f = bin_footprints(obs, GRID)
    wa, wb = 1.0, 0.5 * 4.0  # 1/σ² × share
    assert f["mean"].values[0, 0] == pytest.approx((wa * 1.0 + wb * 4.0) / (wa + wb), rel=1e-6)
    assert f["uncertainty"].values[0, 0] == pytest.approx(
        np.sqrt(wa**2 * 1 + wb**2 * 0.25) / (wa + wb), rel=1e-6
    )
    assert f["weight"].values[0, 0] == pytest.approx(wa + wb, rel=1e-6)
    assert f["mean"].values[0, 1] == pytest.approx(4.0) and f["count"].values[0].tolist() == [2, 1, 0, 0]


def test_antimeridian_pixel_lands_on_both_map_edges_and_nowhere_else() -> None:
    # corners at 179.5E and 179.5W: a 1°-wide pixel across ±180, never a 359°-wide smear
    lat_b, lon_b = _box(10.2, 10.8, 179.5, -179.5)
    f = bin_footprints(_pixels(lat_b, lon_b, [3.0]), GridSpec(1.0))
    seen = np.argwhere(f["count"].values > 0).tolist()
    assert seen == [[100, 0], [100, 359]]
    np.testing.assert_allclose(f["weight"].values[100, [0, 359]], [0.5, 0.5], rtol=1e-9)
    assert (f["mean"].values[100, [0, 359]] == 3.0).all()


def test_antimeridian_regional_grid_keeps_the_pixel_whole() -> None:
    grid = GridSpec(1.0, (170.0, -3.0, 190.0, 3.0))
    lat_b, lon_b = _box(0.0, 1.0, 179.5, -179.5)
    f = bin_footprints(_pixels(lat_b, lon_b, [3.0]), grid)
    assert np.argwhere(f["count"].values > 0).tolist() == [[3, 9], [3, 10]]
    assert float(np.nansum(f["weight"].values)) == pytest.approx(1.0)


def test_a_pixel_around_the_north_pole_covers_the_polar_cap() -> None:
    lat_b = [89.5, 89.5, 89.5, 89.5]
    lon_b = [0.0, 90.0, 180.0, -90.0]
    acc = GridAccumulator(GridSpec(1.0), method="footprint")
    acc.add(_pixels(lat_b, lon_b, [2.0]))
    seen = acc.count.reshape(180, 360) > 0
    assert seen[179].all() and not seen[:179].any()  # the whole top row, nothing below 89°N
    np.testing.assert_allclose(acc.sw.reshape(180, 360)[179], 1 / 360, rtol=1e-8)
    assert (acc.fields()["mean"].values[179] == 2.0).all()


def test_a_pixel_touching_the_south_pole_stays_in_the_bottom_row() -> None:
    lat_b, lon_b = _box(-90.0, -89.2, 10.0, 11.0)
    f = bin_footprints(_pixels(lat_b, lon_b, [2.0]), GridSpec(1.0))
    assert np.argwhere(f["count"].values > 0).tolist() == [[0, 190]]


def test_pixels_partly_outside_a_regional_grid_keep_only_their_inside_share() -> None:
    lat_b, lon_b = _box(2.5, 3.5, 3.5, 4.5)  # a quarter of it inside GRID (top-right cell)
    f = bin_footprints(_pixels(lat_b, lon_b, [5.0]), GRID, weighting="plain")
    assert np.argwhere(f["count"].values > 0).tolist() == [[2, 3]]
    assert f["weight"].values[2, 3] == pytest.approx(
        _band_area(2.5, 3.0) / _band_area(2.5, 3.5) / 2, rel=1e-9
    )
    far = _box(40.0, 41.0, 40.0, 41.0)
    assert int(bin_footprints(_pixels(*far, [5.0]), GRID)["count"].sum()) == 0


def test_empty_and_all_fill_granules_give_an_all_missing_grid() -> None:
    for method in ("centre", "footprint"):
        acc = GridAccumulator(GRID, method=method)
        assert acc.add(_pixels(np.empty((0, 4)), np.empty((0, 4)), [])) == 0
        lat_b, lon_b = _box(1.0, 2.0, 1.0, 2.0)
        fill = _pixels([lat_b, lat_b], [lon_b, lon_b], [np.nan, 1.0], [1.0, np.nan])
        assert acc.add(fill) == 0
        masked = mask_observations(_pixels(lat_b, lon_b, [1.0], qa=[np.nan]), qa_threshold=0.5)
        assert acc.add(masked) == 0
        f = acc.fields()
        assert np.isnan(f["mean"].values).all() and int(f["count"].sum()) == 0 and acc.pixels == 0


def test_non_finite_corners_are_skipped() -> None:
    lat_b, lon_b = _box(1.0, 2.0, 1.0, 2.0)
    lon_b[2] = np.nan
    assert int(bin_footprints(_pixels(lat_b, lon_b, [1.0]), GRID)["count"].sum()) == 0


def test_footprint_without_corners_says_what_to_do() -> None:
    obs = _pixels(*_box(1.0, 2.0, 1.0, 2.0), [1.0]).drop_vars(["latitude_bounds", "longitude_bounds"])
    with pytest.raises(InputError, match="method='centre'"):
        bin_footprints(obs, GRID)
    with pytest.raises(InputError, match="choose one of"):
        GridAccumulator(GRID, method="nearest")  # type: ignore[arg-type]


def test_quality_rules_per_product() -> None:
    assert quality_rule("no2").qa_above == 0.75 and "PRF" in quality_rule("no2").document
    assert quality_rule("co").qa_above == 0.5 and quality_rule("ch4").qa_above == 0.5
    flag = quality_rule("xco2")
    assert flag.keep(np.array([0.0, 1.0, np.nan])).tolist() == [True, False, False]
    obs = _pixels(*_box(1.0, 2.0, 1.0, 2.0), [1.0], qa=[0.6])
    assert mask_observations(obs, rule=quality_rule("co")).sizes["pixel"] == 1
    assert mask_observations(obs, rule=quality_rule("no2")).sizes["pixel"] == 0
    assert mask_observations(obs, rule=QualityRule(qa_above=0.6)).sizes["pixel"] == 0


def _numpy_centres(lat, lon, value, sigma, grid: GridSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    idx = grid.cell_index(lat, lon)
    ok = idx >= 0
    w = 1 / sigma[ok] ** 2
    size = grid.shape[0] * grid.shape[1]
    return (
        np.bincount(idx[ok], weights=w, minlength=size),
        np.bincount(idx[ok], weights=w * value[ok], minlength=size),
        np.bincount(idx[ok], minlength=size),
    )


def test_compiled_centre_kernel_matches_numpy_bincount() -> None:
    rng = np.random.default_rng(4)
    n = 20_000
    lat, lon = rng.uniform(-89.9, 89.9, n), rng.uniform(-400, 400, n)
    value, sigma = rng.normal(1, 0.5, n), rng.uniform(0.1, 1.0, n)
    for grid in (GridSpec(0.5), GridSpec(0.5, (170.0, -30.0, 200.0, 30.0))):
        acc = GridAccumulator(grid)
        acc.add_arrays(value=value, uncertainty=sigma, latitude=lat, longitude=lon)
        sw, swv, count = _numpy_centres(lat, lon, value, sigma, grid)
        np.testing.assert_array_equal(acc.count, count)
        np.testing.assert_allclose(acc.sw, sw, rtol=1e-12)
        np.testing.assert_allclose(acc.swv, swv, rtol=1e-10, atol=1e-9)


def test_centre_on_the_north_pole_is_kept_in_the_top_row() -> None:
    acc = GridAccumulator(GridSpec(1.0))
    one = np.ones(1)
    assert (
        acc.add_arrays(value=one, uncertainty=one, latitude=np.array([90.0]), longitude=np.array([5.0])) == 1
    )
    assert acc.count.reshape(180, 360)[179, 185] == 1


corner = st.tuples(st.floats(0.01, 1.5), st.floats(0.01, 1.5))


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(-88.0, 88.0),  # centre lat
            st.floats(-180.0, 180.0),  # centre lon
            st.tuples(corner, corner, corner, corner),  # half-sizes towards each corner
            st.floats(-1.0, 10.0),  # value
            st.floats(0.1, 2.0),  # sigma
        ),
        min_size=1,
        max_size=60,
    ),
    st.sampled_from([0.25, 1.0, 3.0]),
    st.sampled_from(["plain", "inverse_variance"]),
)
def test_footprint_binning_conserves_the_weighted_sum(pixels, res, weighting) -> None:
    lat_b, lon_b, value, sigma = [], [], [], []
    for la, lo, ((a0, b0), (a1, b1), (a2, b2), (a3, b3)), v, s in pixels:
        # a convex quadrilateral around the centre in S5P corner order (may cross ±180)
        lat_b.append([la - b0, la - b1, la + b2, la + b3])
        lon_b.append([((lo - a0 + 180) % 360) - 180, ((lo + a1 + 180) % 360) - 180, lo + a2, lo - a3])
        value.append(v)
        sigma.append(s)
    acc = GridAccumulator(GridSpec(res), method="footprint", weighting=weighting)
    obs = _pixels(lat_b, lon_b, value, sigma)
    assert acc.add(obs) == len(pixels)
    w = np.ones(len(pixels)) if weighting == "plain" else 1 / np.asarray(sigma) ** 2
    assert acc.sw.sum() == pytest.approx(w.sum(), rel=1e-9)
    assert acc.swv.sum() == pytest.approx(float(w @ np.asarray(value)), rel=1e-9, abs=1e-9 * w.sum() * 10)
    fields = acc.fields()
    got = np.nansum(fields["mean"].values.astype(float) * fields["weight"].values.astype(float))
    assert got == pytest.approx(float(w @ np.asarray(value)), rel=1e-4, abs=1e-4 * w.sum() * 10)
    # footprint and centre binning agree on the totals
    centre = bin_centres(obs, GridSpec(res), weighting=weighting)
    assert int(centre["count"].sum()) == len(pixels)


def _quads(rng: np.random.Generator, n: int, res: float, lat: tuple[float, float]) -> tuple[np.ndarray, ...]:
    """n random pixels, dims (pixel, corner): parallelograms of random size (up to ~2.5 cells) and
    orientation, corners jittered (some not convex), half of them clockwise, some across ±180."""
    la = rng.uniform(*lat, n)
    lo = rng.uniform(-180.0, 180.0, n)
    a = rng.uniform(0.05, 1.2, n)[:, None] * res
    b = rng.uniform(0.05, 1.2, n)[:, None] * res
    t = rng.uniform(0.0, np.pi, n)[:, None]
    u = np.array([-1.0, 1.0, 1.0, -1.0]) * a
    v = np.array([-1.0, -1.0, 1.0, 1.0]) * b
    dy = u * np.sin(t) + v * np.cos(t) + rng.normal(0.0, 0.1, (n, 4)) * res
    dx = u * np.cos(t) - v * np.sin(t) + rng.normal(0.0, 0.1, (n, 4)) * res
    lat_b, lon_b = la[:, None] + dy, lo[:, None] + dx / np.cos(np.radians(la))[:, None]
    cw = rng.random(n) < 0.5
    lat_b[cw], lon_b[cw] = lat_b[cw, ::-1], lon_b[cw, ::-1]
    lon_b = (lon_b + 180.0) % 360.0 - 180.0
    return lat_b, lon_b, rng.normal(5.0, 2.0, n), rng.uniform(0.5, 2.0, n)


def _cells_spanned(lat_b: np.ndarray, lon_b: np.ndarray, res: float) -> list[tuple[int, int]]:
    """(rows, columns) of cells each pixel's bounding box spans."""
    step = (np.diff(lon_b, axis=1) + 180.0) % 360.0 - 180.0
    lon_u = np.concatenate([lon_b[:, :1], lon_b[:, :1] + np.cumsum(step, axis=1)], axis=1)
    rows = np.floor(lat_b.max(1) / res) - np.floor(lat_b.min(1) / res) + 1
    cols = np.floor(lon_u.max(1) / res) - np.floor(lon_u.min(1) / res) + 1
    return list(zip(rows.astype(int).tolist(), cols.astype(int).tolist(), strict=True))


@pytest.mark.parametrize(
    ("grid", "lat"),
    [
        (GridSpec(0.25), (-70.0, 70.0)),
        (GridSpec(0.25), (70.0, 88.0)),  # wide pixels near the pole (not around it)
        (GridSpec(0.5, (170.0, -30.0, 200.0, 30.0)), (-31.0, 31.0)),  # regional, across ±180, edges
    ],
)
def test_strip_path_equals_the_general_path_for_each_pixel_shape(grid: GridSpec, lat) -> None:
    # pixels over ≤ 2 rows take the strip path (areas left of each column edge by clipping the edges, for a
    # block of pixels at a time); the general path (inclusion–exclusion of corner areas) must give the same
    # cells, shares and counts
    rng = np.random.default_rng(11)
    lat_b, lon_b, value, sigma = _quads(rng, 20_000, grid.resolution, lat)
    shapes = np.array(_cells_spanned(lat_b, lon_b, grid.resolution))
    west, south, _, _ = grid.bounds
    n_lat, n_lon = grid.shape
    tested = []
    for shape in sorted({s for s in map(tuple, shapes.tolist()) if s[0] <= 2 and s != (1, 1)}):
        pick = (shapes == shape).all(axis=1)
        if pick.sum() < 20:
            continue
        tested.append(shape)
        sums = {}
        for strips in (True, False):
            sums[strips] = np.zeros((n_lat * n_lon, 4))
            footprint.footprint_kernel(
                lat_b[pick], lon_b[pick], value[pick], sigma[pick], True,
                south, west, grid.resolution, n_lat, n_lon, sums[strips], strips,
            )  # fmt: skip
        assert sums[True][:, 0].sum() > 0, f"no {shape} pixel landed on the grid"
        np.testing.assert_array_equal(sums[True][:, 3], sums[False][:, 3], err_msg=f"counts, {shape}")
        np.testing.assert_allclose(
            sums[True][:, :3], sums[False][:, :3], rtol=1e-9, atol=1e-12, err_msg=f"{shape}"
        )
    assert len(tested) >= 6 and ((2, 2) in tested or lat[0] >= 70.0), tested
    # near the pole, strips wider than the vectorised column slots (continued one column at a time)
    assert lat[0] < 70.0 or max(columns for _, columns in tested) > footprint._SLOTS, tested


def test_mixed_blocks_equal_the_general_path() -> None:
    # the kernel works in blocks of pixels of every class at once (one cell, strips of any width, wide
    # strips past the vectorised columns, general, across ±180): the blocks' shared passes must give each
    # pixel what the general path gives it
    rng = np.random.default_rng(12)
    parts = [_quads(rng, 3_001, 0.25, (-70.0, 70.0)), _quads(rng, 1_999, 0.25, (70.0, 88.0))]
    lat_b, lon_b, value, sigma = (np.concatenate(k) for k in zip(*parts, strict=True))
    order = rng.permutation(lat_b.shape[0])
    lat_b, lon_b, value, sigma = lat_b[order], lon_b[order], value[order], sigma[order]
    columns = np.array(_cells_spanned(lat_b, lon_b, 0.25))[:, 1]
    assert (columns > footprint._SLOTS).sum() > 100 and (columns <= 3).sum() > 1000
    sums = {}
    for strips in (True, False):
        sums[strips] = np.zeros((720 * 1440, 4))
        used = footprint.footprint_kernel(
            lat_b, lon_b, value, sigma, False, -90.0, -180.0, 0.25, 720, 1440, sums[strips], strips
        )
        assert used == lat_b.shape[0]
    np.testing.assert_array_equal(sums[True][:, 3], sums[False][:, 3])
    np.testing.assert_allclose(sums[True][:, :3], sums[False][:, :3], rtol=1e-9, atol=1e-12)


def _clipped_area(xs: np.ndarray, ys: np.ndarray, x0: float, x1: float, y0: float, y1: float) -> float:
    """Signed area of a polygon (vertices xs, ys) inside the rectangle [x0, x1] × [y0, y1], by
    Sutherland–Hodgman clipping and the shoelace formula: a reference independent of the kernel."""
    pts = list(zip(xs.tolist(), ys.tolist(), strict=True))
    for axis, edge, keep_below in ((0, x0, False), (0, x1, True), (1, y0, False), (1, y1, True)):
        out = []
        for k, cur in enumerate(pts):
            prev = pts[k - 1]
            cur_in = cur[axis] <= edge if keep_below else cur[axis] >= edge
            prev_in = prev[axis] <= edge if keep_below else prev[axis] >= edge
            if cur_in != prev_in:
                t = (edge - prev[axis]) / (cur[axis] - prev[axis])
                out.append((prev[0] + t * (cur[0] - prev[0]), prev[1] + t * (cur[1] - prev[1])))
            if cur_in:
                out.append(cur)
        pts = out
        if not pts:
            return 0.0
    x, y = np.array(pts).T
    return float(0.5 * np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))


@pytest.mark.parametrize(
    ("grid", "lat", "lon"),
    [
        (GridSpec(0.25), (-60.0, 60.0), None),
        (GridSpec(0.25), (80.0, 87.0), None),  # wide strips near the pole
        (GridSpec(1.0, (170.0, -5.0, 200.0, 5.0)), (-6.0, 6.0), (166.0, 204.0)),  # regional, across ±180
    ],
)
def test_footprint_shares_equal_polygon_clipping(grid: GridSpec, lat, lon) -> None:
    # each pixel's weight in each cell against clipping its polygon to the cell in the equal-area plane
    # (longitude unwrapped from the first corner, sin latitude): checks the kernel's cell ranges, wrapping
    # and both paths end to end
    rng = np.random.default_rng(13)
    lat_b, lon_b, value, sigma = _quads(rng, 300, grid.resolution * 3, lat)
    if lon is not None:  # move each pixel, whole, so that its first corner lies in lon
        lon_b = lon_b + (rng.uniform(*lon, len(lon_b)) - lon_b[:, 0])[:, None]
        lon_b = (lon_b + 180.0) % 360.0 - 180.0
    west, south, _, _ = grid.bounds
    n_lat, n_lon = grid.shape
    res = grid.resolution
    expected = np.zeros((n_lat * n_lon, 2))
    for la, lo in zip(lat_b, lon_b, strict=True):
        x = lo[0] + np.concatenate([[0.0], np.cumsum((np.diff(lo) + 180.0) % 360.0 - 180.0)])
        x = x - np.floor((x.min() - west) / 360.0) * 360.0  # westernmost vertex in [west, west + 360)
        y = np.sin(np.radians(la))
        xr, yr = x.min(), y.min()  # clip relative to the pixel: no digits lost to cancellation
        x, y = x - xr, y - yr
        total = _clipped_area(x, y, -1e9, 1e9, -2.0, 2.0)
        for i in range(max(int(np.floor((la.min() - south) / res)), 0), n_lat):
            if south + i * res >= la.max():
                break
            y0, y1 = np.sin(np.radians(south + i * res)) - yr, np.sin(np.radians(south + (i + 1) * res)) - yr
            j = int(np.floor((xr - west) / res))
            while west + j * res < xr + x.max():
                f = _clipped_area(x, y, west + j * res - xr, west + (j + 1) * res - xr, y0, y1) / total
                jj = j % round(360.0 / res)
                if f > 1e-12 and jj < n_lon:  # the kernel drops slivers below 1e-12 of a pixel
                    expected[i * n_lon + jj] += (f, 1.0)
                j += 1
    sums = np.zeros((n_lat * n_lon, 4))
    footprint.footprint_kernel(lat_b, lon_b, value, sigma, False, south, west, res, n_lat, n_lon, sums)
    assert expected[:, 1].sum() > 1.5 * len(lat_b)  # most pixels span several cells
    np.testing.assert_allclose(sums[:, 0], expected[:, 0], rtol=1e-9, atol=1e-11)
    np.testing.assert_array_equal(sums[:, 3] > 0, expected[:, 1] > 0)
