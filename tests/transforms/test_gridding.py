"""Pixel-centre binning: exact cell values on hand-made inputs, fill and QA masking, antimeridian grids."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

from transforms.grid import GridSpec
from transforms.gridding import bin_centres, mask_observations, select_day


def _obs(lat, lon, value, sigma=None, qa=None, time=None) -> xr.Dataset:
    n = len(lat)
    return xr.Dataset(
        {
            "latitude": ("pixel", np.asarray(lat, dtype=float)),
            "longitude": ("pixel", np.asarray(lon, dtype=float)),
            "value": ("pixel", np.asarray(value, dtype=float)),
            "uncertainty": ("pixel", np.asarray(sigma if sigma is not None else [1.0] * n, dtype=float)),
            "qa": ("pixel", np.asarray(qa if qa is not None else [1.0] * n, dtype=float)),
            "time": (
                "pixel",
                np.asarray(time if time is not None else ["2020-03-03T12:00"] * n, dtype="datetime64[ns]"),
            ),
        }
    )


GRID = GridSpec(1.0, (0.0, 0.0, 4.0, 3.0))  # 3 x 4 cells


def test_exact_cell_values_plain_and_inverse_variance() -> None:
    obs = _obs(
        lat=[0.5, 0.2, 0.9, 2.5],
        lon=[0.5, 0.1, 0.7, 3.5],
        value=[1.0, 2.0, 6.0, 5.0],
        sigma=[1.0, 1.0, 2.0, 0.5],
    )
    plain = bin_centres(obs, GRID, weighting="plain")
    assert plain["count"].values.tolist() == [[3, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1]]
    assert plain["mean"].values[0, 0] == pytest.approx(3.0)
    assert plain["mean"].values[2, 3] == pytest.approx(5.0)
    # plain: sqrt(1 + 1 + 4) / 3
    assert plain["uncertainty"].values[0, 0] == pytest.approx(np.sqrt(6.0) / 3, rel=1e-6)
    ivw = bin_centres(obs, GRID, weighting="inverse_variance")
    w = np.array([1.0, 1.0, 0.25])
    assert ivw["mean"].values[0, 0] == pytest.approx((w @ [1.0, 2.0, 6.0]) / w.sum(), rel=1e-6)
    assert ivw["uncertainty"].values[0, 0] == pytest.approx(1 / np.sqrt(w.sum()), rel=1e-6)
    assert ivw["weight"].values[0, 0] == pytest.approx(w.sum())
    # empty cells are missing, never zero
    assert np.isnan(ivw["mean"].values[1, 1]) and ivw["count"].values[1, 1] == 0


def test_fill_and_qa_pixels_are_dropped() -> None:
    obs = _obs(
        lat=[0.5, 0.5, 0.5, np.nan, 1.5],
        lon=[0.5, 0.5, 0.5, 0.5, 1.5],
        value=[1.0, np.nan, 100.0, 7.0, 3.0],
        qa=[1.0, 1.0, 0.74, 1.0, 0.76],
    )
    fields = bin_centres(mask_observations(obs, qa_threshold=0.75), GRID)
    assert fields["count"].values[0, 0] == 1 and fields["mean"].values[0, 0] == 1.0
    assert fields["mean"].values[1, 1] == 3.0
    assert int(fields["count"].sum()) == 2


def test_qa_threshold_is_strict() -> None:
    obs = _obs(lat=[0.5], lon=[0.5], value=[1.0], qa=[0.75])
    assert mask_observations(obs, qa_threshold=0.75).sizes["pixel"] == 0


def test_points_outside_the_grid_are_ignored_and_edges_are_half_open() -> None:
    obs = _obs(lat=[-0.1, 3.0, 1.0, 0.0], lon=[0.5, 0.5, 4.0, 0.0], value=[9.0, 9.0, 9.0, 2.0])
    fields = bin_centres(obs, GRID)
    assert int(fields["count"].sum()) == 1 and fields["mean"].values[0, 0] == 2.0


def test_antimeridian_grid_takes_both_sides() -> None:
    grid = GridSpec(1.0, (178.0, -1.0, 182.0, 1.0))  # 178E … 178W
    obs = _obs(lat=[0.5, 0.5, 0.5], lon=[178.5, -179.5, -178.5], value=[1.0, 2.0, 3.0])
    fields = bin_centres(obs, grid)
    assert fields["lon"].values.tolist() == [178.5, 179.5, 180.5, 181.5]
    assert fields["mean"].values[1].tolist()[0] == 1.0
    assert fields["mean"].values[1, 2] == 2.0 and fields["mean"].values[1, 3] == 3.0


def test_select_day_uses_pixel_time() -> None:
    obs = _obs(
        lat=[0.5, 0.5], lon=[0.5, 0.5], value=[1.0, 2.0], time=["2020-03-02T23:59:59", "2020-03-03T00:00:00"]
    )
    assert select_day(obs, np.datetime64("2020-03-03")).value.values.tolist() == [2.0]


def test_empty_input_gives_an_all_missing_grid() -> None:
    fields = bin_centres(_obs([], [], []), GRID)
    assert np.isnan(fields["mean"].values).all() and int(fields["count"].sum()) == 0


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(-89.99, 89.99), st.floats(-180, 179.99), st.floats(-1e-4, 1e-3), st.floats(1e-6, 1e-4)
        ),
        min_size=1,
        max_size=200,
    )
)
def test_weighted_sum_is_conserved(pixels: list[tuple[float, float, float, float]]) -> None:
    lat, lon, value, sigma = (np.array(x) for x in zip(*pixels, strict=True))
    fields = bin_centres(_obs(lat, lon, value, sigma), GridSpec(5.0))
    w = 1 / sigma**2
    got = np.nansum(fields["mean"].values.astype(float) * fields["weight"].values.astype(float))
    assert got == pytest.approx(float((w * value).sum()), rel=1e-4, abs=1e-3 * w.max() * 1e-6)
    assert int(fields["count"].sum()) == len(pixels)


@pytest.mark.parametrize("method", ["centre", "footprint"])
def test_lean_file_to_grid_equals_the_dataset_path(tmp_path, method: str) -> None:
    """grid_granules (lean read: no corners for centre, masked arrays binned directly; for footprints only the
    kept pixels, copied together) gives exactly what the full observations Dataset path (open_observations →
    mask_observations → select_day → add) gives."""
    import datetime as dt

    from transforms.granules import parse_granule_name
    from transforms.gridding import GridAccumulator, quality_rule
    from transforms.l3 import grid_granules
    from transforms.products import get_product
    from transforms.s5p import open_observations, write_s5p_l2

    rng = np.random.default_rng(3)
    n_scan, n_pix = 40, 12
    lat = np.linspace(44.0, 48.0, n_scan)[:, None] + np.zeros(n_pix)
    lon = np.linspace(5.0, 9.0, n_pix)[None, :] + np.zeros((n_scan, 1))
    d = 0.05
    lat_b = np.stack([lat - d, lat - d, lat + d, lat + d], axis=-1)
    lon_b = np.stack([lon - d, lon + d, lon + d, lon - d], axis=-1)
    value = rng.normal(5e-5, 1e-5, (n_scan, n_pix))
    value[0, :3] = np.nan
    qa = rng.choice([0.5, 1.0], (n_scan, n_pix))
    delta = np.linspace(0, 86_400_000 * 1.2, n_scan)  # the last scanlines fall on the next day
    path = tmp_path / "S5P_OFFL_L2__NO2____20200303T000000_20200303T235959_12367_01_010302_20200305T000000.nc"
    write_s5p_l2(
        path, name=parse_granule_name(path.name), latitude=lat, longitude=lon, latitude_bounds=lat_b,
        longitude_bounds=lon_b, value=value, precision=np.full_like(value, 1e-5), qa_value=qa,
        delta_time_ms=delta, time_reference=dt.datetime(2020, 3, 3, tzinfo=dt.UTC), include_averaging_kernel=False,
    )  # fmt: skip
    grid, product, day = GridSpec(0.5, (0.0, 40.0, 10.0, 50.0)), get_product("no2"), dt.date(2020, 3, 3)
    assert "latitude_bounds" not in open_observations(path, product=product, corners=False)
    with open(path, "rb") as f:
        fields, stats = grid_granules([f], day=day, grid=grid, product=product, method=method)  # type: ignore[arg-type]
    acc = GridAccumulator(grid, method=method)  # type: ignore[arg-type]
    obs = open_observations(path, product=product)
    acc.add(select_day(mask_observations(obs, rule=quality_rule(product)), day))
    expected = acc.fields()
    assert 0 < stats.pixels_used == acc.pixels < n_scan * n_pix
    for name in ("mean", "uncertainty", "count", "weight"):
        np.testing.assert_array_equal(fields[name].values, expected[name].values)
