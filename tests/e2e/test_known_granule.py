"""A granule in the real S5P structure that no eolake code wrote (the real KNMI skeleton with a documented field
injected by plain h5py: tests/data/s5p/make_known_granule.py) is harvested and gridded to exactly the known
cell values; QA-failed and fill pixels are absent; the antimeridian-crossing swath lands on both map edges and
nowhere else; harvest faults are quarantined, versions superseded, re-runs are no-ops."""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pystac
import pytest
import xarray as xr
import zarr

from catalog.items import create_granule_item, footprint_geometry
from transforms.granules import parse_granule_name

DATA = Path(__file__).resolve().parents[1] / "data" / "s5p"
KNOWN = (
    DATA / "known" / "S5P_OFFL_L2__NO2____20200303T013547_20200303T031717_12367_01_010302_20200306T053815.nc"
)
DAY = ["--start", "2020-03-03", "--end", "2020-03-03"]


def _field() -> dict[str, np.ndarray]:
    spec = importlib.util.spec_from_file_location("make_known_granule", DATA / "make_known_granule.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.known_field()


def _static_catalog(root: Path, files: list[Path], *, sizes: dict[str, int] | None = None) -> Path:
    """A static STAC catalog of ``files`` shaped like Planetary Computer's (what an upstream would publish)."""
    f = _field()
    geometry, bbox = footprint_geometry(f["lat_b"][:, :20], f["lon_b"][:, :20])
    cat = pystac.Catalog("upstream", "test upstream")
    col = pystac.Collection(
        "sentinel-5p-l2-netcdf",
        "s5p",
        pystac.Extent(pystac.SpatialExtent([[-180, -90, 180, 90]]), pystac.TemporalExtent([[None, None]])),
    )
    cat.add_child(col)
    for path in files:
        data = path.read_bytes()
        size = (sizes or {}).get(path.name, len(data))
        item = create_granule_item(
            parse_granule_name(path.name),
            href=str(path),
            geometry=geometry,
            bbox=bbox,
            size=size,
            checksum_sha256=hashlib.sha256(data).hexdigest(),
        )
        col.add_item(item)
    cat.normalize_hrefs(str(root))
    cat.save(pystac.CatalogType.SELF_CONTAINED)
    return root / "catalog.json"


def _open_cube(lake: Path) -> xr.Dataset:
    (store,) = list((lake / "cubes" / "s5p-no2").glob("*.zarr"))
    return xr.open_zarr(store, zarr_format=3, consolidated=True).sel(time="2020-03-03").load()


def test_known_granule_is_gridded_exactly(cli, tmp_path: Path) -> None:
    files = tmp_path / "files"
    files.mkdir()
    shutil.copy(KNOWN, files / KNOWN.name)
    source = _static_catalog(tmp_path / "upstream", [files / KNOWN.name])
    lake = tmp_path / "lake"
    out = cli("harvest", "--source", str(source), "--product", "no2", *DAY, "--lake", str(lake)).stdout
    assert "1 fetched" in out
    assert (next(lake.rglob(KNOWN.name))).read_bytes() == KNOWN.read_bytes()

    # regional grid across the antimeridian: 170E … 170W, 3S … 3N at 1°
    cli("grid", "--product", "no2", *DAY, "--lake", str(lake), "--resolution", "1", "--bbox", "170,-3,190,3")
    ds = _open_cube(lake)
    assert ds.sizes == {"lat": 6, "lon": 20}
    s, k = np.meshgrid(np.arange(6), np.arange(20), indexing="ij")
    expected = ((20 * s + k + 1) * 1e-6).astype(np.float32)
    expected[1, 3] = expected[2, 12] = expected[3, 7] = np.nan  # qa 0.50, qa 0.75 (strict), fill
    np.testing.assert_array_equal(ds["mean"].values, expected)
    assert ds["mean"].values[4, 15] == np.float32(96e-6)  # qa 0.76 is kept
    np.testing.assert_array_equal(ds["count"].values, np.where(np.isnan(expected), 0, 1))
    np.testing.assert_allclose(ds["uncertainty"].values[~np.isnan(expected)], 1e-6, rtol=1e-6)

    # footprint binning: each 1° pixel polygon covers exactly one cell, so the same exact values
    regional = ("--resolution", "1", "--bbox", "170,-3,190,3")
    out = cli(
        "grid", "--product", "no2", *DAY, "--lake", str(lake), *regional, "--method", "footprint", "--force"
    )
    assert "1 day(s) gridded" in out.stdout
    fp = _open_cube(lake)
    np.testing.assert_array_equal(fp["mean"].values, expected)
    np.testing.assert_array_equal(fp["count"].values, np.where(np.isnan(expected), 0, 1))
    np.testing.assert_allclose(fp["weight"].values[~np.isnan(expected)], 1e12, rtol=1e-6)
    (store,) = list((lake / "cubes" / "s5p-no2").glob("*.zarr"))
    assert "footprint" in zarr.open_group(store, mode="r").attrs["source"]

    # global grid, both methods: the swath lands on both edges of the map and nowhere else
    for method in ("centre", "footprint"):
        cli(
            "grid",
            "--product",
            "no2",
            *DAY,
            "--lake",
            str(lake),
            "--resolution",
            "1",
            "--method",
            method,
            "--force",
        )
        (store,) = [p for p in (lake / "cubes" / "s5p-no2").glob("*global.zarr")]
        g = xr.open_zarr(store, zarr_format=3, consolidated=True).sel(time="2020-03-03").load()
        seen = g["count"].values > 0
        assert seen.sum() == 6 * 20 - 3
        lat_ok = (g["lat"].values > -3) & (g["lat"].values < 3)
        lon = g["lon"].values
        assert not seen[~lat_ok].any()
        assert seen[:, lon > 170].any() and seen[:, lon < -170].any()
        assert not seen[:, (lon > -170) & (lon < 170)].any()
        assert g["mean"].sel(lat=0.5, lon=-179.5).item() == pytest.approx(float(np.float32(71e-6)), rel=0)
        assert g["mean"].sel(lat=0.5, lon=179.5).item() == pytest.approx(float(np.float32(70e-6)), rel=0)


def test_harvest_faults_versions_and_reruns(cli, tmp_path: Path) -> None:
    files = tmp_path / "files"
    files.mkdir()
    good = files / KNOWN.name
    shutil.copy(KNOWN, good)
    # a better version of the same orbit (reprocessed), a corrupt file and a truncated download
    rpro = files / KNOWN.name.replace("_OFFL_", "_RPRO_").replace("_010302_", "_020400_")
    shutil.copy(KNOWN, rpro)
    corrupt = files / "S5P_OFFL_L2__NO2____20200303T031717_20200303T045847_12368_01_010302_20200306T071815.nc"
    corrupt.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(range(256)) * 40)
    truncated = (
        files / "S5P_OFFL_L2__NO2____20200303T045847_20200303T064017_12369_01_010302_20200306T090015.nc"
    )
    truncated.write_bytes(KNOWN.read_bytes()[: KNOWN.stat().st_size // 2])
    source = _static_catalog(
        tmp_path / "upstream", [good, rpro, corrupt, truncated], sizes={truncated.name: KNOWN.stat().st_size}
    )
    lake = tmp_path / "lake"
    plan = cli(
        "harvest", "--plan", "--source", str(source), "--product", "no2", *DAY, "--lake", str(lake)
    ).stdout
    assert "plan: 4 new and 0 retried granule(s) to fetch" in plan and "days to re-grid: 2020-03-03" in plan
    assert f"fetch {rpro.stem}" in plan and not lake.exists()  # --plan writes nothing, not even the lake
    out = cli("harvest", "--source", str(source), "--product", "no2", *DAY, "--lake", str(lake)).stdout
    assert "quarantined" in out and corrupt.stem in out and truncated.stem in out
    ledger = pd.read_parquet(lake / "ledger" / "granules.parquet").set_index("granule_id")
    assert ledger.loc[rpro.stem, "status"] == "harvested"
    assert ledger.loc[good.stem, "status"] == "superseded"
    assert ledger.loc[corrupt.stem, "status"] == "quarantined"
    assert "size mismatch" in ledger.loc[truncated.stem, "reason"]
    assert not list((lake / "raw").rglob(corrupt.name)) and not list((lake / "raw").rglob(truncated.name))
    assert not list((lake / "raw" / ".partial").glob("*"))

    # the grid uses only the best version: the cube day is made of the RPRO granule alone
    cli("grid", "--product", "no2", *DAY, "--lake", str(lake), "--resolution", "1", "--bbox", "170,-3,190,3")
    days = pd.read_parquet(lake / "ledger" / "cube_days.parquet")
    assert [list(g) for g in days["granules"]] == [[rpro.stem]]

    # the plan now: the two quarantined granules would be retried, nothing else fetched
    plan = cli(
        "harvest", "--plan", "--source", str(source), "--product", "no2", *DAY, "--lake", str(lake)
    ).stdout
    assert "plan: 0 new and 2 retried granule(s) to fetch" in plan and "2 already in the lake" in plan

    # a re-run fetches nothing new; quarantined granules are retried within their budget
    again = cli("harvest", "--source", str(source), "--product", "no2", *DAY, "--lake", str(lake)).stdout
    assert "0 fetched" in again
    ledger2 = pd.read_parquet(lake / "ledger" / "granules.parquet").set_index("granule_id")
    assert len(ledger2) == 4
    assert ledger2.loc[corrupt.stem, "attempts"] == 2
    assert (
        ledger2.loc[[good.stem, rpro.stem], "updated"] == ledger.loc[[good.stem, rpro.stem], "updated"]
    ).all()
    regrid = cli(
        "grid", "--product", "no2", *DAY, "--lake", str(lake), "--resolution", "1", "--bbox", "170,-3,190,3"
    ).stdout
    assert "0 day(s) gridded, 1 unchanged" in regrid

    # census: a granule published upstream since the harvest is missing; the others are accounted for
    late = files / "S5P_OFFL_L2__NO2____20200303T064017_20200303T082147_12370_01_010302_20200306T104215.nc"
    shutil.copy(KNOWN, late)
    source2 = _static_catalog(
        tmp_path / "upstream2",
        [good, rpro, corrupt, truncated, late],
        sizes={truncated.name: KNOWN.stat().st_size},
    )
    report = cli(
        "census", "--source", str(source2), "--product", "no2", *DAY, "--lake", str(lake), check=False
    )
    assert report.returncode == 1  # incomplete: something is missing or quarantined
    assert "2020-03-03" in report.stdout and f"missing {late.stem}" in report.stdout
    assert f"quarantined {corrupt.stem}" in report.stdout and f"superseded {good.stem}" in report.stdout
    day_line = next(line for line in report.stdout.splitlines() if line.startswith("2020-03-03"))
    assert day_line.split()[1:] == [
        "5",
        "1",
        "1",
        "2",
        "1",
    ]  # upstream, harvested, missing, quarantined, superseded
