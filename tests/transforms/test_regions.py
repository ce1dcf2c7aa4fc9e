"""Country boundaries, names and masks."""

from __future__ import annotations

import time

import numpy as np
import pytest

from transforms import regions
from transforms.errors import TruthTableError
from transforms.grid import GridSpec


def _country_at(mask, grid: GridSpec, lat: float, lon: float) -> str | None:
    idx = int(grid.cell_index(np.array([lat]), np.array([lon]))[0])
    k = int(mask.values.flat[idx])
    return None if k < 0 else mask.attrs["countries_iso3"][k]


def test_load_countries_has_fixed_unique_codes() -> None:
    countries = regions.load_countries()
    codes = [c.iso3 for c in countries]
    assert len(codes) == len(set(codes)) >= 178
    assert "-99" not in codes
    by_name = {c.name: c.iso3 for c in countries}
    assert by_name["France"] == "FRA" and by_name["Norway"] == "NOR" and by_name["Kosovo"] == "XKX"
    assert by_name["N. Cyprus"] == "CYN" and by_name["Somaliland"] == "SOL"
    assert all(c.geometry.is_valid and not c.geometry.is_empty for c in countries)
    assert set(regions.EU27) <= set(codes)  # including Malta, added by hand
    assert len(regions.EU27) == 27


def test_global_mask_known_points_and_speed() -> None:
    grid = GridSpec(0.1)
    regions._cached_mask.cache_clear()
    t0 = time.perf_counter()
    mask = regions.country_mask(grid)
    elapsed = time.perf_counter() - t0
    assert elapsed < 10.0, f"global 0.1° mask took {elapsed:.1f} s"  # ~0.7 s measured
    assert mask.dtype == np.int16 and mask.dims == ("lat", "lon") and mask.shape == grid.shape
    assert _country_at(mask, grid, 48.8566, 2.3522) == "FRA"  # Paris
    assert _country_at(mask, grid, 52.52, 13.405) == "DEU"  # Berlin
    assert _country_at(mask, grid, 40.42, -3.70) == "ESP"  # Madrid
    assert _country_at(mask, grid, 39.9, 116.4) == "CHN"  # Beijing
    assert _country_at(mask, grid, -33.87, 151.0) == "AUS"  # Sydney
    assert _country_at(mask, grid, 45.0, -30.0) is None  # mid-Atlantic
    assert _country_at(mask, grid, 0.0, -140.0) is None  # Pacific


def test_mask_is_a_copy_and_cached() -> None:
    grid = GridSpec(1.0)
    a = regions.country_mask(grid)
    a.values[:] = 7
    b = regions.country_mask(grid)
    assert (b.values != 7).any()


def test_regional_grid_across_antimeridian_contains_fiji() -> None:
    grid = GridSpec(0.25, (170.0, -25.0, 190.0, -10.0))
    mask = regions.country_mask(grid)
    assert _country_at(mask, grid, -17.8, 178.0) == "FJI"  # Viti Levu
    iso3 = mask.attrs["countries_iso3"]
    fiji = mask.values == iso3.index("FJI")
    lons = np.broadcast_to(mask["lon"].values, grid.shape)[fiji]
    assert (lons > 180.0).any() and (lons < 180.0).any()  # both sides of the antimeridian
    assert [c.iso3 for c in regions.countries_in_grid(grid)] == ["FJI"]


def test_small_countries_get_a_cell_and_custom_lists_index_into_them() -> None:
    grid = GridSpec(1.0, (-10.0, 30.0, 30.0, 60.0))
    present = {c.iso3 for c in regions.countries_in_grid(grid)}
    assert {"MLT", "LUX", "DEU", "FRA"} <= present and "CHN" not in present
    subset = [regions.resolve_country(c) for c in ("DEU", "FRA")]
    mask = regions.country_mask(GridSpec(0.25, (-10.0, 40.0, 20.0, 56.0)), subset)
    assert mask.attrs["countries_iso3"] == ["DEU", "FRA"]
    assert set(np.unique(mask.values)) == {-1, 0, 1}
    assert [c.iso3 for c in regions.mask_countries(mask)] == ["DEU", "FRA"]


@pytest.mark.parametrize(
    ("name", "iso3"),
    [
        ("United States", "USA"),
        ("United States of America", "USA"),
        ("usa", "USA"),
        ("Czech Republic", "CZE"),
        ("czechia", "CZE"),
        (" Germany ", "DEU"),
        ("United Kingdom", "GBR"),
        ("UK", "GBR"),
        ("Russia", "RUS"),
        ("South Korea", "KOR"),
        ("Dem. Rep. Congo", "COD"),
        ("Malta", "MLT"),
    ],
)
def test_resolve_country_names(name: str, iso3: str) -> None:
    assert regions.resolve_country(name).iso3 == iso3


def test_carbon_monitor_names() -> None:
    assert regions.resolve_country("USA").cm_name == "United States"
    assert regions.resolve_country("CZE").cm_name == "Czech Republic"
    assert regions.resolve_country("DEU").cm_name == "Germany"


def test_unknown_country_says_what_is_known() -> None:
    with pytest.raises(TruthTableError, match=r"unknown country 'Atlantis'; known names include .*Germany"):
        regions.resolve_country("Atlantis")
    with pytest.raises(TruthTableError, match="aggregate"):
        regions.resolve_country("WORLD")


def test_aggregates() -> None:
    assert regions.aggregate_code("eu27") == "EU27"
    assert regions.aggregate_code("EU27 & UK") == "EU27 & UK"
    assert regions.aggregate_code("World") == "WORLD"
    assert regions.aggregate_code("ROW") == "ROW"
    assert regions.aggregate_code("Germany") is None
    assert set(regions.AGGREGATES) == {"EU27", "EU27 & UK", "ROW", "WORLD"}
