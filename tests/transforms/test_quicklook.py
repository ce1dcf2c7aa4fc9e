"""Quicklook PNGs: a valid PNG of the map's size, written beside the cube when a day is gridded, and attached
to that day's STAC item as its thumbnail."""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from matplotlib.image import imread

from infra.cubes import (
    committed_days,
    cube_id,
    cube_key,
    cube_spec,
    quicklook_key,
    recover_cube,
    staging_key,
    write_quicklook,
)
from infra.ledger import commit_cube_days
from infra.publish import publish_cube
from infra.storage import open_lake, zarr_store
from transforms.cube import encode_day, ensure_cube, stage_day, write_day
from transforms.grid import GridSpec
from transforms.quicklook import PNG_SIGNATURE, QuicklookStyle, render_quicklook

GRID = GridSpec(0.5, (0.0, 40.0, 20.0, 56.0))  # Europe: coastlines and borders in view
DAY = dt.date(2020, 3, 3)


def _fields(empty: bool = False) -> xr.Dataset:
    lat, lon = np.meshgrid(GRID.lat(), GRID.lon(), indexing="ij")
    mean = (1e-4 * (1 + np.sin(np.radians(lon * 9)))).astype(np.float32)
    mean[lat > 50] = np.nan  # no data north of 50°N
    if empty:
        mean[:] = np.nan
    count = np.where(np.isfinite(mean), 3, 0).astype(np.int32)
    return xr.Dataset(
        {
            "mean": (("lat", "lon"), mean),
            "uncertainty": (("lat", "lon"), mean / 10),
            "count": (("lat", "lon"), count),
            "weight": (("lat", "lon"), count.astype(np.float32)),
        }
    )


@pytest.mark.parametrize("empty", [False, True])
def test_render_is_a_png_of_the_requested_size_with_data_and_gaps(empty: bool) -> None:
    style = QuicklookStyle(width_in=6.0, dpi=80)
    png = render_quicklook(
        _fields(empty)["mean"], grid=GRID, title="NO2", units="mol m-2", day=DAY, coverage=0.5, style=style
    )
    assert png.startswith(PNG_SIGNATURE)
    rgba = imread(io.BytesIO(png))
    assert rgba.shape[1] == 6 * 80 and 200 <= rgba.shape[0] <= 2 * 6 * 80
    rgb = np.rint(rgba[..., :3] * 255).astype(np.uint8)
    no_data = float(np.all(rgb == 0xE8, axis=-1).mean())  # the map's background, shown where mean is NaN
    assert (0.25 < no_data < 0.6) if empty else (0.05 < no_data < 0.25)


def test_render_rejects_a_field_of_another_grid() -> None:
    with pytest.raises(ValueError, match="shape"):
        render_quicklook(
            xr.DataArray(np.zeros((3, 3)), dims=("lat", "lon")),
            grid=GRID,
            title="x",
            units="1",
            day=DAY,
            coverage=0.0,
        )


def test_gridded_day_gets_a_quicklook_file_and_a_thumbnail_asset(tmp_path: Path) -> None:
    lake = open_lake(str(tmp_path / "lake"))
    spec = cube_spec("no2", GRID)
    fields = _fields()
    write_day(zarr_store(lake, cube_key(spec)), fields, day=DAY, spec=spec)
    coverage = float((fields["count"].values > 0).mean())
    key = write_quicklook(lake, spec, DAY, fields, coverage=coverage)
    assert key == quicklook_key(spec, DAY) == f"quicklooks/s5p-no2/{GRID.grid_id}/2020-03-03.png"
    commit_cube_days(
        lake,
        [
            {
                "cube": cube_id(spec),
                "day": DAY,
                "granules": [],
                "pixels": 10,
                "observed_cells": int((fields["count"].values > 0).sum()),
                "coverage": coverage,
                "committed": dt.datetime.now(dt.UTC),
            }
        ],
    )
    assert len(committed_days(lake, spec)) == 1
    png = Path(lake.path(key)).read_bytes()
    assert png.startswith(PNG_SIGNATURE) and 10_000 < len(png) < 2_000_000
    assert imread(io.BytesIO(png)).shape[1] == 1000  # default 10 in × 100 dpi
    assert publish_cube(lake, spec) == 1
    item_path = next(Path(lake.path("stac")).glob("s5p-no2-l3-daily-*/items/*.json"))
    item = json.loads(item_path.read_text())
    thumb = item["assets"]["thumbnail"]
    assert thumb["roles"] == ["thumbnail"] and thumb["type"] == "image/png"
    assert (item_path.parent / thumb["href"]).resolve() == Path(lake.path(key)).resolve()


def test_a_recovered_day_gets_its_quicklook(tmp_path: Path) -> None:
    """A day a crashed run staged but did not publish is finished by recover_cube, quicklook included."""
    lake = open_lake(str(tmp_path / "lake"))
    spec = cube_spec("no2", GRID)
    fields = _fields()
    row = {
        "cube": cube_id(spec),
        "day": DAY.isoformat(),
        "granules": ["g1"],
        "pixels": 10,
        "observed_cells": 5,
        "coverage": 0.25,
        "committed": dt.datetime.now(dt.UTC).isoformat(),
    }
    ensure_cube(zarr_store(lake, cube_key(spec)), spec, until=DAY)
    stage_day(zarr_store(lake, staging_key(spec)), encode_day(fields, spec), day=DAY, record=row)
    assert not Path(lake.path(quicklook_key(spec, DAY))).exists()
    (recovered,) = recover_cube(lake, spec)
    assert recovered["day"] == DAY and recovered["granules"] == ["g1"]
    png = Path(lake.path(quicklook_key(spec, DAY))).read_bytes()
    assert png.startswith(PNG_SIGNATURE) and imread(io.BytesIO(png)).shape[1] == 1000
