"""OCO-2 Lite and NIES GOSAT end to end through the CLI: simulate (the real formats) → harvest (and census) →
grid into a daily cube on each product's default grid → STAC items. A truncated Lite file and a corrupt NIES file that
upstream publishes (with matching size and checksum) are quarantined with the reader's reason; the cube's
cells equal an independent binning of the raw files (h5py, xco2_quality_flag == 0, inverse variance)."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pystac
import pytest
import xarray as xr

from catalog.validation import validate_stac
from tests.fakes.damage import publish

BBOX = "-5,42,20,56"
PERIOD = ["--start", "2020-03-02", "--end", "2020-03-03"]


def _publish_damaged(archive: Path, filename: str, data: bytes) -> None:
    """Replace an archive file by ``data`` and update its item's size and checksum (upstream published it so)."""
    next(archive.rglob(filename)).write_bytes(data)
    publish(archive, filename)


def _independent_means(path: Path, *, lat0: float, lon0: float, res: float) -> dict[tuple[int, int], float]:
    """Inverse-variance means per cell straight from a Lite file with h5py (flag 0, not missing)."""
    with h5py.File(path) as f:
        lat, lon = f["latitude"][()], f["longitude"][()]
        x, u, flag = f["xco2"][()], f["xco2_uncertainty"][()], f["xco2_quality_flag"][()]
        t = f["time"][()]
    day = np.floor(t / 86400.0)
    ok = (flag == 0) & (x > -999998) & (u > 0) & (day == day.min())
    rows = np.floor((lat[ok] - lat0) / res).astype(int)
    cols = np.floor((lon[ok] - lon0) / res).astype(int)
    w = 1.0 / u[ok].astype(np.float64) ** 2
    sums: dict[tuple[int, int], list[float]] = {}
    for r, c, wi, xi in zip(rows, cols, w, x[ok].astype(np.float64), strict=True):
        s = sums.setdefault((r, c), [0.0, 0.0])
        s[0] += wi * xi
        s[1] += wi
    return {k: v[0] / v[1] for k, v in sums.items()}


def test_oco2_and_gosat_end_to_end(cli, tmp_path: Path) -> None:
    archive, lake = tmp_path / "archive", tmp_path / "lake"
    for product in ("oco2-xco2", "gosat-xco2"):
        out = cli("simulate", "--out", str(archive), "--product", product, f"--bbox={BBOX}", *PERIOD).stdout
        assert json.loads(out)["granules"] == 2
    catalog = pystac.Catalog.from_file(str(archive / "catalog.json"))
    assert {c.id for c in catalog.get_children()} >= {
        "OCO2_L2_Lite_FP_11.2r",
        "GOSAT_TANSO_FTS_SWIR_L2_C01S_V02.95",
    }
    lite = sorted(p.name for p in archive.rglob("oco2_LtCO2_*.nc4"))
    nies = sorted(p.name for p in archive.rglob("GOSATTFTS*.h5"))
    assert len(lite) == len(nies) == 2
    good_lite = next(archive.rglob(lite[0])).read_bytes()
    _publish_damaged(archive, lite[1], next(archive.rglob(lite[1])).read_bytes()[:5000])  # truncated
    _publish_damaged(archive, nies[1], b"\x89HDF\r\n\x1a\n" + bytes(2048))  # corrupt HDF5

    source = str(archive / "catalog.json")
    out = cli("harvest", "--source", source, "--product", "oco2-xco2", *PERIOD, "--lake", str(lake)).stdout
    bad = lite[1].removesuffix(".nc4")
    assert f"quarantined {bad}" in out
    out = cli("harvest", "--source", source, "--product", "gosat-xco2", *PERIOD, "--lake", str(lake)).stdout
    assert f"quarantined {nies[1].removesuffix('.h5')}" in out
    ledger = pd.read_parquet(lake / "ledger" / "granules.parquet").set_index("granule_id")
    assert ledger.index.is_unique and len(ledger) == 4
    assert ledger.loc[lite[0].removesuffix(".nc4"), "status"] == "harvested"
    assert ledger.loc[nies[0].removesuffix(".h5"), "status"] == "harvested"
    for gid in (bad, nies[1].removesuffix(".h5")):
        assert ledger.loc[gid, "status"] == "quarantined"
        assert "cannot be read" in ledger.loc[gid, "reason"] or "not an HDF5" in ledger.loc[gid, "reason"]
    assert next((lake / "raw").rglob(lite[0])).read_bytes() == good_lite
    census = cli(
        "census", "--source", source, "--product", "oco2-xco2", *PERIOD, "--lake", str(lake), check=False
    )
    assert census.returncode == 1 and f"  quarantined {bad}" in census.stdout  # completeness names it

    # grid each product's first day on its default grid (OCO-2 1°, GOSAT 2°)
    day = ["--start", "2020-03-02", "--end", "2020-03-02", f"--bbox={BBOX}"]
    cli("grid", "--product", "oco2-xco2", *day, "--lake", str(lake))
    cli("grid", "--product", "gosat-xco2", *day, "--lake", str(lake))
    oco_cube = xr.open_zarr(next((lake / "cubes" / "oco2-xco2").glob("1deg-*.zarr")), zarr_format=3)
    gosat_cube = xr.open_zarr(next((lake / "cubes" / "gosat-xco2").glob("2deg-*.zarr")), zarr_format=3)
    assert oco_cube.attrs["title"].startswith("OCO-2 XCO2 daily L3, 1.0°")
    assert gosat_cube.attrs["title"].startswith("GOSAT TANSO-FTS XCO2 daily L3, 2.0°")
    assert "Sentinel" not in oco_cube.attrs["keywords"] + oco_cube.attrs["history"]
    first = oco_cube.sel(time="2020-03-02")
    expected = _independent_means(
        next((lake / "raw").rglob(lite[0])),
        lat0=float(oco_cube.lat[0]) - 0.5,
        lon0=float(oco_cube.lon[0]) - 0.5,
        res=1.0,
    )
    assert expected and int(first["count"].sum()) > 100
    inside = {
        k: v
        for k, v in expected.items()
        if 0 <= k[0] < oco_cube.sizes["lat"] and 0 <= k[1] < oco_cube.sizes["lon"]
    }
    for (r, c), mean in inside.items():
        assert float(first["mean"].values[r, c]) == pytest.approx(mean, rel=1e-6)
    assert int((first["count"].values > 0).sum()) == len(inside)
    g = gosat_cube.sel(time="2020-03-02")
    assert 0 < int(g["count"].sum()) <= 100 and 400 < float(g["mean"].mean()) < 420

    # STAC: raw items in their product collections, cube collections and day items
    stac = lake / "stac"
    for collection, gid in (
        ("oco2-l2-xco2", lite[0].removesuffix(".nc4")),
        ("gosat-l2-xco2", nies[0].removesuffix(".h5")),
    ):
        item = pystac.Item.from_file(str(stac / collection / "items" / f"{gid}.json"))
        validate_stac(item)
        assert item.properties["processing:version"] in ("B11014A", "0295")
        assert not any(k.startswith("s5p:") for k in item.properties)
    assert not (stac / "oco2-l2-xco2" / "items" / f"{bad}.json").exists()
    cube_items = list((stac).glob("oco2-xco2-l3-daily-1deg-*/items/*2020-03-02.json"))
    assert len(cube_items) == 1
    validate_stac(pystac.Item.from_file(str(cube_items[0])))
