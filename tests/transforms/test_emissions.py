"""The NO2 forward model and the first inversion, checked with a gridded mini-OSSE (no swaths)."""

from __future__ import annotations

import functools
from typing import Any

import dask
import dask.array as da
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from transforms import emissions as em
from transforms import regions, truth
from transforms.errors import InputError
from transforms.grid import GridSpec

GRID = GridSpec(0.25, (-10.0, 36.0, 25.0, 56.0))
TRUTH_COUNTRIES = ["DEU", "FRA", "ESP", "ITA", "POL", "GBR", "NLD", "BEL"]
CHECKED = ["DEU", "FRA", "ESP", "ITA", "POL", "GBR", "NLD", "BEL"]  # Belgium: ~50 cells
START, END = "2019-03-01", "2019-03-30"
OBS = list(em.NO2_OBSERVABLE_SECTORS)
NOISE = 3e-6  # mol m-2, 1σ per cell-day (a cell mean of several TROPOMI pixels)


@pytest.fixture(scope="module")
def setup() -> dict[str, Any]:
    mask = regions.country_mask(GRID)
    padded = em.inversion_grid(GRID)
    inv_mask = regions.country_mask(padded)
    return {
        "mask": mask,
        "proxies": em.sector_proxies(GRID, mask),
        "padded": padded,
        "inv_mask": inv_mask,
        "inv_proxies": em.sector_proxies(padded, inv_mask),
        "inventory": truth.load_base_inventory(),
    }


@functools.cache
def _source_model(grid: GridSpec) -> tuple[GridSpec, xr.DataArray, xr.DataArray]:
    """Where the simulated world's sources sit for a domain: a 4× finer grid over the inversion's padded
    grid (wider than the domain: sources beyond its edges reach it, as in the simulator), its mask and
    proxies."""
    wide = em.inversion_grid(grid)
    fine = GridSpec(grid.resolution / 4, wide.bounds)
    mask = regions.country_mask(fine)
    return fine, mask, em.sector_proxies(fine, mask)


def _true_field(day_rows: pd.DataFrame, grid: GridSpec) -> np.ndarray:
    """The NO2 column a day's emissions make on ``grid`` (mol m-2): modelled on the finer source grid,
    averaged to the cells of ``grid``."""
    fine, mask, proxies = _source_model(grid)
    field = em.no2_column_field(day_rows, fine, mask=mask, proxies=proxies)
    coarse = field.reshape(field.shape[0] // 4, 4, field.shape[1] // 4, 4).mean(axis=(1, 3))
    return _crop(coarse, em.inversion_grid(grid), grid)


def _crop(field: np.ndarray, padded: GridSpec, grid: GridSpec) -> np.ndarray:
    """The part of a field on ``padded`` that lies on ``grid`` (same resolution and cell edges)."""
    i0 = round((grid.bounds[1] - padded.bounds[1]) / grid.resolution)
    j0 = round((grid.bounds[0] - padded.bounds[0]) / grid.resolution)
    return field[i0 : i0 + grid.shape[0], j0 : j0 + grid.shape[1]]


def _cube(table: pd.DataFrame, setup: dict[str, Any], *, seed: int = 1, cloud: float = 0.3) -> xr.Dataset:
    """Forward-model each day (:func:`_true_field`), add noise and drop ``cloud`` of the cells at random;
    dask-backed."""
    days = pd.date_range(START, END)
    rng = np.random.default_rng(seed)
    fields = []
    for day in days:
        field = _true_field(table[table["date"] == day], GRID)
        field = field + rng.normal(0.0, NOISE, field.shape)
        field[rng.random(field.shape) < cloud] = np.nan
        fields.append(field)
    mean = np.stack(fields).astype(np.float32)
    observed = np.isfinite(mean)
    dims = ("time", "lat", "lon")
    chunks = (5, 40, 70)
    return xr.Dataset(
        {
            "mean": (dims, da.from_array(mean, chunks=chunks)),
            "count": (dims, da.from_array(np.where(observed, 4, 0).astype(np.int32), chunks=chunks)),
            "uncertainty": (
                dims,
                da.from_array(np.where(observed, NOISE, np.nan).astype(np.float32), chunks=chunks),
            ),
        },
        coords={"time": days, "lat": GRID.lat(), "lon": GRID.lon()},
    )


def _derive(cube: xr.Dataset, setup: dict[str, Any]) -> pd.DataFrame:
    return em.derive_emissions(
        cube,
        GRID,
        mask=setup["inv_mask"],
        proxies=setup["inv_proxies"],
        inventory=setup["inventory"],
        release="test-r1",
    )


def _observable(table: pd.DataFrame) -> pd.Series:
    rows = table[table["sector"].isin(OBS)]
    if "is_aggregate" in rows.columns:
        rows = rows[~rows["is_aggregate"]]
    return rows.groupby(["iso3", "date"])["value"].sum()


@pytest.fixture(scope="module")
def baseline(setup: dict[str, Any]) -> dict[str, Any]:
    table = truth.builtin_scenario(START, END, countries=TRUTH_COUNTRIES)
    cube = _cube(table, setup)
    return {"truth": table, "cube": cube, "out": _derive(cube, setup)}


def test_column_conversion_magnitude(setup: dict[str, Any]) -> None:
    """Germany (~2 MtCO2/day over ~357,000 km²) gives an enhancement of order 3-8e-5 mol m-2."""
    day = truth.builtin_scenario("2019-03-04", "2019-03-04", countries=["DEU"])
    assert 1.8 < day["value"].sum() < 2.4
    field = em.no2_column_field(day, GRID, mask=setup["mask"], proxies=setup["proxies"])
    deu = setup["mask"].values == setup["mask"].attrs["countries_iso3"].index("DEU")
    enhancement = field[deu] - em.NO2_BACKGROUND_MOL_M2
    assert 2e-5 < enhancement.mean() < 8e-5
    assert 5e-5 < enhancement.max() < 5e-4
    far = setup["mask"].values == setup["mask"].attrs["countries_iso3"].index("ESP")
    np.testing.assert_allclose(field[far], em.NO2_BACKGROUND_MOL_M2, rtol=1e-6)


def test_proxies_sum_to_one_per_country(setup: dict[str, Any]) -> None:
    proxies, mask = setup["proxies"], setup["mask"].values
    assert proxies.dims == ("sector", "lat", "lon") and list(proxies["sector"].values) == OBS
    codes = setup["mask"].attrs["countries_iso3"]
    for k in np.unique(mask[mask >= 0]):
        sums = proxies.values[:, mask == k].sum(axis=1)
        if codes[k] in ("DEU", "ITA", "POL", "BEL", "CHE", "AUT", "CZE"):  # wholly inside GRID
            np.testing.assert_allclose(sums, 1.0, rtol=1e-9)
        else:  # cut by GRID's edges: the share of the whole country inside
            assert (sums <= 1.0 + 1e-9).all()
    gbr = proxies.values[:, mask == codes.index("GBR")].sum(axis=1)
    assert (gbr > 0.5).all() and (gbr < 0.99).all()  # Scotland is beyond 56°N
    assert (proxies.values[:, mask < 0] == 0).all()
    deu = mask == setup["mask"].attrs["countries_iso3"].index("DEU")
    power = np.sort(proxies.sel(sector="Power").values[deu])[::-1]
    transport = np.sort(proxies.sel(sector="Ground Transport").values[deu])[::-1]
    assert power[:12].sum() > 0.8  # a few plants
    assert transport[:12].sum() < 0.3  # smoother
    again = em.sector_proxies(GRID, setup["mask"])
    np.testing.assert_array_equal(again.values, proxies.values)  # deterministic


def test_a_cut_country_keeps_its_whole_country_weights() -> None:
    """A grid that cuts Poland gives its cells the weights they have on a grid holding all of Poland, so a
    regional domain sees (and a simulation on it emits) only the share of Poland inside it."""
    whole = GridSpec(0.25, (10.0, 45.0, 30.0, 58.0))
    cut = GridSpec(0.25, (10.0, 45.0, 19.0, 58.0))
    out = {}
    for grid in (whole, cut):
        mask = regions.country_mask(grid)
        pol = mask.values == mask.attrs["countries_iso3"].index("POL")
        proxies = em.sector_proxies(grid, mask).values
        lon = np.broadcast_to(grid.lon()[None, :], grid.shape)
        out[grid] = {"sums": proxies[:, pol].sum(axis=1), "west": proxies[:, pol & (lon < 19.0)]}
    np.testing.assert_allclose(out[whole]["sums"], 1.0, rtol=1e-9)
    assert (out[cut]["sums"] < 0.8).all() and (out[cut]["sums"] > 0.1).all()
    np.testing.assert_allclose(out[cut]["west"], out[whole]["west"], rtol=0.03)


def test_gaussian_smooth_conserves_mass_and_wraps() -> None:
    grid = GridSpec(1.0)
    field = np.zeros(grid.shape)
    field[120, 0] = 1.0  # next to the antimeridian at 30°N
    out = em.gaussian_smooth(field, grid, sigma_km=200.0)
    assert out.sum() == pytest.approx(1.0)
    assert out[120, -1] > 0.1 * out[120, 0]  # spread across the date line
    assert out[120, 1] == pytest.approx(out[120, -1])


def test_osse_recovers_daily_variation_and_totals(baseline: dict[str, Any]) -> None:
    recovered, true = _observable(baseline["out"]), _observable(baseline["truth"])
    out = baseline["out"]
    for iso3 in CHECKED:
        rows = out[(out["iso3"] == iso3) & (out["sector"] == "Power")]
        assert rows["coverage"].between(0.4, 0.95).all()  # 30% of cells dropped at random
        assert not rows["gap_filled"].any()
        r = np.corrcoef(recovered[iso3].to_numpy(), true[iso3].to_numpy())[0, 1]
        bias = recovered[iso3].sum() / true[iso3].sum() - 1
        assert r >= 0.9, f"{iso3}: daily correlation {r:.3f}"
        assert abs(bias) <= 0.05, f"{iso3}: period bias {bias:+.3f}"


def test_osse_sees_the_lockdown_step(baseline: dict[str, Any]) -> None:
    ld = baseline["truth"].attrs["lockdown"]
    assert ld["iso3"] == "DEU"
    series = _observable(baseline["out"])["DEU"]
    inside = (series.index >= ld["start"]) & (series.index <= ld["end"])
    drop = 1 - series[inside].mean() / series[~inside].mean()
    true = _observable(baseline["truth"])["DEU"]
    true_drop = 1 - true[inside].mean() / true[~inside].mean()
    assert abs(drop - true_drop) < 0.04


def test_inversion_follows_the_observations_not_the_inventory(
    baseline: dict[str, Any], setup: dict[str, Any]
) -> None:
    table = baseline["truth"].copy()
    table.loc[table["iso3"] == "FRA", "value"] *= 2.0
    out = _derive(_cube(table, setup, seed=2), setup)
    before, after = _observable(baseline["out"]), _observable(out)
    ratio = after["FRA"].sum() / before["FRA"].sum()
    assert 1.85 < ratio < 2.15
    for iso3 in ("DEU", "ESP", "GBR"):
        assert after[iso3].sum() / before[iso3].sum() == pytest.approx(1.0, abs=0.03)


def test_cloudy_days_are_gap_filled_not_zero(baseline: dict[str, Any], setup: dict[str, Any]) -> None:
    cube = baseline["cube"].copy()
    mask = setup["mask"]
    ita = xr.DataArray(mask.values == mask.attrs["countries_iso3"].index("ITA"), dims=("lat", "lon"))
    cloudy = xr.DataArray(np.isin(np.arange(cube.sizes["time"]), [10, 11, 12]), dims="time")
    hide = ita & cloudy
    cube["mean"] = cube["mean"].where(~hide)
    cube["count"] = cube["count"].where(~hide, 0)
    out = _derive(cube, setup)
    rows = out[(out["iso3"] == "ITA") & (out["sector"] == "Industry")].reset_index(drop=True)
    assert rows.loc[[10, 11, 12], "gap_filled"].all() and not rows.drop([10, 11, 12])["gap_filled"].any()
    assert (rows.loc[[10, 11, 12], "coverage"] == 0).all()
    assert (rows["value"] > 0).all()
    base = baseline["out"]
    base_rows = base[(base["iso3"] == "ITA") & (base["sector"] == "Industry")].reset_index(drop=True)

    def inversion_sd(r: pd.DataFrame) -> pd.Series:  # without the sector-share part (10% of the value)
        return np.sqrt(r["uncertainty"] ** 2 - (em.SHARE_REL_UNCERTAINTY * r["value"]) ** 2)

    gap_days = [10, 11, 12]
    assert (inversion_sd(rows.loc[gap_days]) > 1.5 * inversion_sd(base_rows.loc[gap_days])).all()
    np.testing.assert_allclose(
        rows.loc[[10, 11, 12], "value"], base_rows.loc[[10, 11, 12], "value"], rtol=0.15
    )


def test_never_observed_country_falls_back_to_flagged_profile(setup: dict[str, Any]) -> None:
    grid = GridSpec(0.5, (5.0, 45.0, 16.0, 55.0))
    wide = em.inversion_grid(grid)
    mask = regions.country_mask(wide)
    proxies = em.sector_proxies(wide, mask)
    days = pd.date_range("2019-06-03", periods=4)
    table = truth.builtin_scenario(days[0], days[-1], countries=["DEU", "AUT"])
    mean = np.stack([_true_field(table[table.date == d], grid) for d in days])
    aut = _crop(mask.values, wide, grid) == mask.attrs["countries_iso3"].index("AUT")
    mean[:, aut] = np.nan
    dims = ("time", "lat", "lon")
    cube = xr.Dataset(  # plain numpy this time
        {
            "mean": (dims, mean),
            "count": (dims, np.isfinite(mean).astype(np.int32)),
            "uncertainty": (dims, np.full(mean.shape, 1e-6)),
        },
        coords={"time": days, "lat": grid.lat(), "lon": grid.lon()},
    )
    out = em.derive_emissions(
        cube, grid, mask=mask, proxies=proxies, inventory=setup["inventory"], release="r"
    )
    aut_rows = out[(out["iso3"] == "AUT") & out["sector"].isin(OBS)]
    assert (aut_rows["source"] == "inventory_profile").all() and aut_rows["gap_filled"].all()
    assert (aut_rows["value"] > 0).all()
    deu = _observable(out)["DEU"].to_numpy()
    np.testing.assert_allclose(deu, _observable(table)["DEU"].to_numpy(), rtol=0.05)


def test_output_table_layout_and_aggregates(baseline: dict[str, Any]) -> None:
    out = baseline["out"]
    assert list(out.columns) == list(em.OUTPUT_COLUMNS)
    assert str(out["date"].dtype) == "datetime64[ns]"
    for column in ("value", "uncertainty", "coverage"):
        assert out[column].dtype == np.float64 and np.isfinite(out[column]).all()
    assert out["gap_filled"].dtype == bool and out["is_aggregate"].dtype == bool
    assert (out["method_version"] == em.METHOD_VERSION).all() and (out["release"] == "test-r1").all()
    assert set(out["sector"]) == set(truth.SECTORS)
    assert (out["value"] >= 0).all() and ((out["uncertainty"] > 0) | (out["value"] == 0)).all()
    assert out["coverage"].between(0, 1).all()
    assert not out.duplicated(["iso3", "date", "sector"]).any()
    members = out[~out["is_aggregate"]]
    assert set(out.loc[out["is_aggregate"], "iso3"]) == {"WORLD", "EU27", "ROW"}
    assert set(members["source"]) <= {"no2_activity", "profile", "default_share_profile", "inventory_profile"}
    profile = members[~members["sector"].isin(OBS)]
    assert (profile["coverage"] == 0).all() and (profile["source"] != "no2_activity").all()
    deu = members[members["iso3"] == "DEU"]
    assert deu["country"].iloc[0] == "Germany"
    world = out[out["iso3"] == "WORLD"].set_index(["date", "sector"])["value"]
    member_sum = members.groupby(["date", "sector"])["value"].sum()
    np.testing.assert_allclose(world.sort_index(), member_sum.sort_index())
    eu = out[out["iso3"] == "EU27"].set_index(["date", "sector"])["value"]
    eu_sum = members[members["iso3"].isin(regions.EU27)].groupby(["date", "sector"])["value"].sum()
    np.testing.assert_allclose(eu.sort_index(), eu_sum.sort_index())
    assert (eu.sort_index() < world.sort_index()).all()  # the UK, Switzerland, ... are in WORLD only
    row = out[out["iso3"] == "ROW"].set_index(["date", "sector"])["value"]
    row_sum = members[~members["iso3"].isin(regions.ROW_EXCLUDES)].groupby(["date", "sector"])["value"].sum()
    np.testing.assert_allclose(row.sort_index(), row_sum.sort_index())
    assert {"CHE", "SRB"} <= set(members["iso3"]) - set(regions.ROW_EXCLUDES)  # ROW is not empty here


def test_dask_cube_is_computed_once(baseline: dict[str, Any], setup: dict[str, Any]) -> None:
    calls = []

    def counting_get(dsk: Any, keys: Any, **kwargs: Any) -> Any:
        calls.append(keys)
        return dask.get(dsk, keys, **kwargs)

    with dask.config.set(scheduler=counting_get):
        out = _derive(baseline["cube"], setup)
    assert len(calls) == 1
    pd.testing.assert_frame_equal(out, baseline["out"])
    eager = _derive(baseline["cube"].compute(), setup)
    pd.testing.assert_frame_equal(eager, baseline["out"], rtol=1e-9)


def test_bad_inputs_say_the_fix(baseline: dict[str, Any], setup: dict[str, Any]) -> None:
    with pytest.raises(InputError, match="lacks variable 'uncertainty'"):
        _derive(baseline["cube"].drop_vars("uncertainty"), setup)
    with pytest.raises(InputError, match="grid shape"):
        _derive(baseline["cube"].isel(lat=slice(0, 10)), setup)
    with pytest.raises(InputError, match="ROW"):
        em.derive_emissions(
            baseline["cube"],
            GRID,
            mask=setup["inv_mask"],
            proxies=setup["inv_proxies"],
            inventory=setup["inventory"][lambda d: d.iso3 != "ROW"],
            release="r",
        )
    with pytest.raises(InputError, match="several dates"):
        em.no2_column_field(baseline["truth"], GRID, mask=setup["mask"], proxies=setup["proxies"])


def test_countries_outside_the_inventory_get_an_area_share_of_row(setup: dict[str, Any]) -> None:
    inventory = setup["inventory"]
    countries = [regions.resolve_country(c) for c in ("DEU", "ALB", "MNG")]
    annual, own = em._inventory_table(inventory, countries)
    assert own.tolist() == [True, False, False]
    row = inventory[inventory["iso3"] == "ROW"].set_index("sector")["annual_mt"].reindex(truth.SECTORS)
    np.testing.assert_allclose(annual[1] / annual[1].sum(), row / row.sum())  # ROW's sector split
    assert 0 < annual[1].sum() < 0.002 * row.sum()  # Albania: a small share of ROW, not all of it
    assert annual[2].sum() > 20 * annual[1].sum()  # Mongolia is ~50× Albania's area


def test_inversion_grid_pads_the_domain_by_four_sigma_cell_for_cell() -> None:
    padded = em.inversion_grid(GRID, smoothing_km=30.0)
    assert padded.resolution == GRID.resolution
    pad_deg = 4 * 30.0 / 111.195
    west, south, east, north = padded.bounds
    assert south <= GRID.bounds[1] - pad_deg and north >= GRID.bounds[3] + pad_deg
    assert (
        west <= GRID.bounds[0] - pad_deg and east >= GRID.bounds[2] + pad_deg
    )  # wider in lon, by 1/cos(lat)
    rows, cols = em._crop(padded, GRID)
    np.testing.assert_allclose(padded.lat()[rows], GRID.lat())
    np.testing.assert_allclose(padded.lon()[cols], GRID.lon())
    assert em.inversion_grid(GridSpec(0.5)) == GridSpec(0.5)  # a global grid has no outside
    with pytest.raises(InputError, match="mask shape"):
        em.derive_emissions(
            xr.Dataset(
                {
                    v: (("time", "lat", "lon"), np.zeros((1, *GRID.shape)))
                    for v in ("mean", "count", "uncertainty")
                },
                coords={"time": pd.date_range(START, periods=1)},
            ),
            GRID,
            mask=regions.country_mask(GRID),  # on the domain, not the inversion grid
            inventory=truth.load_base_inventory(),
            release="r",
        )
