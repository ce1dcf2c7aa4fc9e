"""The grid flow's cube writes (decision 0011): a day beyond the cube's time axis, written by ``grid_day`` with
``grow=False`` as the flow's parallel tasks write, is invisible to a plain consolidated ``xr.open_zarr`` reader
until ``extend_cube`` grows the axis; then it appears whole. ``prepare_cube`` never grows an existing axis."""

from __future__ import annotations

import datetime as dt

import pytest
import xarray as xr

from infra.archive import simulate_day, write_archive_catalog
from infra.cubes import cube_key, cube_spec, extend_cube, grid_day, prepare_cube
from infra.harvest import harvest_granule
from infra.ledger import upsert_granules
from infra.scenario import load_truth
from infra.sources import find_granules
from infra.storage import Lake, open_lake
from transforms.grid import GridSpec

DAYS = [dt.date(2020, 3, 2), dt.date(2020, 3, 3)]
BBOX = (0.0, 45.0, 12.0, 55.0)


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Lake:
    """A local lake holding two harvested days of simulated NO2 granules."""
    archive = tmp_path_factory.mktemp("archive")
    items = [
        item
        for day in DAYS
        for item in simulate_day(
            str(archive), day, load_truth(None, start=day, end=day, bounds=BBOX), bounds=BBOX
        )
    ]
    write_archive_catalog(str(archive), items)
    the_lake = open_lake(str(tmp_path_factory.mktemp("lake")))
    catalog = str(archive / "catalog.json")
    granules = find_granules(catalog, product="no2", start=DAYS[0], end=DAYS[-1])
    upsert_granules(the_lake, [harvest_granule(g, the_lake, source=catalog) for g in granules])
    return the_lake


def _time_len(lake: Lake, key: str) -> int:
    with xr.open_zarr(lake.path(key), consolidated=True) as cube:
        return int(cube.sizes["time"])


def test_days_beyond_the_axis_appear_whole_when_the_cube_is_extended(lake: Lake) -> None:
    spec = cube_spec("no2", GridSpec.snapped(0.5, BBOX))
    key = cube_key(spec)
    prepare_cube(lake, spec, first=DAYS[0])
    assert _time_len(lake, key) == spec.day_index(DAYS[0])  # the axis ends just before the run's first day

    rows = [grid_day(lake, spec, day, grow=False) for day in DAYS]
    assert all(r["pixels"] > 0 for r in rows)
    assert _time_len(lake, key) == spec.day_index(DAYS[0])  # written, not yet seen by a plain reader
    prepare_cube(lake, spec, first=DAYS[0])  # idempotent: an existing axis is never grown (or shrunk) here
    assert _time_len(lake, key) == spec.day_index(DAYS[0])

    extend_cube(lake, spec, until=DAYS[-1])
    with xr.open_zarr(lake.path(key), consolidated=True) as cube:
        assert cube.sizes["time"] == spec.day_index(DAYS[-1]) + 1
        for day, row in zip(DAYS, rows, strict=True):
            count = cube["count"].isel(time=spec.day_index(day)).values
            assert int(count.sum()) == row["pixels"]  # each day complete: every binned pixel counted
            assert int((count > 0).sum()) == row["observed_cells"]
