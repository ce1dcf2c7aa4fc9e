"""The simulated archive writes every XCO2 product in its real format: one daily file per product, readable by
the product's reader, with flags, fills and clouds as documented; one collection per product; valid items."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pystac
import pytest

from catalog.validation import validate_stac
from infra.archive import UPSTREAM_COLLECTIONS, simulate_day, write_archive_catalog
from infra.scenario import load_truth
from infra.sources import find_granules
from transforms.errors import InputError
from transforms.granules import parse_granule_name
from transforms.observations import open_observations
from transforms.simulation import XCO2_BACKGROUND_PPM

BBOX = (-5.0, 42.0, 20.0, 56.0)
DAY = dt.date(2020, 3, 2)
XCO2 = ("oco2-xco2", "oco3-xco2", "acos-xco2", "gosat-xco2", "tansat-xco2")


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, dict]]:
    out = tmp_path_factory.mktemp("archive")
    truth = load_truth(None, start=DAY, end=DAY, bounds=BBOX)
    rows = truth[pd.to_datetime(truth["date"]).dt.date == DAY]
    items = {}
    for product in XCO2:
        (item,) = simulate_day(str(out), DAY, rows, bounds=BBOX, product=product)
        items[product] = item
    write_archive_catalog(str(out), list(items.values()))
    return out, items


@pytest.mark.parametrize("product", XCO2)
def test_each_product_is_written_in_its_format(archive: tuple[Path, dict[str, dict]], product: str) -> None:
    _, items = archive
    item = items[product]
    href = item["assets"][product]["href"]
    name = parse_granule_name(href)
    assert name.product == product and name.start.date() == DAY
    obs = open_observations(href, product=product, corners=False)
    t = obs["time"].values.astype("datetime64[D]")
    assert (t == np.datetime64(DAY)).all()  # a daily file holds that UTC day only
    value = obs["value"].values
    good = obs["qa"].values == 1.0
    assert good.any() and np.isfinite(value[good]).all()
    assert abs(float(np.nanmean(value[good])) - XCO2_BACKGROUND_PPM) < 3.0
    if product == "gosat-xco2":  # NIES files hold only screened soundings: no cloudy ones
        assert "quality_flag" not in obs
    else:
        assert set(np.unique(obs["quality_flag"].values)) == {0, 1}  # clouds and failures are flagged
    validate_stac(pystac.Item.from_dict(item))


def test_one_collection_per_product_and_harvest_finds_them(archive: tuple[Path, dict[str, dict]]) -> None:
    out, _ = archive
    catalog = pystac.Catalog.from_file(str(out / "catalog.json"))
    assert {c.id for c in catalog.get_children()} == {UPSTREAM_COLLECTIONS[p] for p in XCO2}
    for product in XCO2:
        (g,) = find_granules(str(out / "catalog.json"), product=product, start=DAY, end=DAY)
        assert g.name.product == product and g.sha256 and g.size


def test_unknown_product_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="simulator writes"):
        simulate_day(str(tmp_path), DAY, pd.DataFrame(), bounds=BBOX, product="co")


@pytest.mark.parametrize("product", XCO2)
@pytest.mark.parametrize("damage", ["truncated", "scrambled"])
def test_transfer_quarantines_bad_files_of_each_format(
    archive: tuple[Path, dict[str, dict]], tmp_path: Path, product: str, damage: str
) -> None:
    """The harvest's verified copy opens each file with its product's reader: a good file lands under raw/, a
    truncated or scrambled one (published with matching size and checksum) is quarantined with the reason."""
    from infra.storage import open_lake
    from infra.transfer import fetch_granule, raw_key

    _, items = archive
    good = Path(items[product]["assets"][product]["href"])
    lake = open_lake(str(tmp_path / "lake"))
    ok = fetch_granule(str(good), lake, raw_key(product, good.name, str(DAY)), product=product)
    assert ok.ok and ok.key.startswith("raw/")
    data = good.read_bytes()
    bad = tmp_path / good.name
    bad.write_bytes(
        data[: len(data) // 3] if damage == "truncated" else data[:4096] + bytes(len(data) - 4096)
    )
    result = fetch_granule(str(bad), lake, raw_key(product, "x-" + good.name, str(DAY)), product=product)
    assert not result.ok and result.key.startswith("quarantine/")
    reasons = ("cannot be read", "not an HDF5", "has no variable", "is not a GOSAT file")
    assert result.reason and result.reason.startswith("unreadable: granule ")
    assert any(r in result.reason for r in reasons), result.reason


@pytest.mark.parametrize("product", XCO2)
def test_each_product_grids_from_the_lake(
    archive: tuple[Path, dict[str, dict]], tmp_path: Path, product: str
) -> None:
    """Harvested (verified copy into the lake) then gridded on the product's default grid, by centres and by
    footprints: only flag-good soundings count, both methods keep the same weight, the mean is the simulated
    XCO2 level, and the raw file sits under its mission's prefix."""
    from infra.storage import open_lake
    from infra.transfer import fetch_granule, raw_key
    from transforms.grid import GridSpec
    from transforms.observations import grid_granules
    from transforms.products import get_product

    spec = get_product(product)
    _, items = archive
    src = Path(items[product]["assets"][product]["href"])
    lake = open_lake(str(tmp_path / "lake"))
    copied = fetch_granule(str(src), lake, raw_key(product, src.name, str(DAY)), product=product)
    assert copied.ok and copied.key == f"raw/{spec.mission}/{product}/2020/03/02/{src.name}"
    obs = open_observations(src, product=product, corners=False)
    good = int((obs["qa"].values > spec.qa_threshold).sum())
    grid = GridSpec(spec.default_resolution)
    out = {}
    for method in ("centre", "footprint"):
        with lake.fs.open(lake.path(copied.key), "rb") as f:
            fields, stats = grid_granules([f], day=DAY, grid=grid, product=spec, method=method)
        out[method] = fields
        assert stats.pixels_used == good > 0
        observed = fields["count"].values > 0
        assert observed.any()
        assert abs(float(np.nanmean(fields["mean"].values[observed])) - XCO2_BACKGROUND_PPM) < 3.0
    assert np.isclose(
        float(out["centre"]["weight"].sum()), float(out["footprint"]["weight"].sum()), rtol=1e-6
    )
