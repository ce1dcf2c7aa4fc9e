"""Monthly means from daily cubes: exact values on a hand-made two-day case; a re-gridded day updates its own
month only; the monthly cube gets a STAC collection the intake catalog lists."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import yaml

from infra.cubes import committed_days, cube_id, cube_key, cube_spec, monthly_key, update_monthly
from infra.ledger import commit_cube_days
from infra.publish import publish_cube, publish_intake
from infra.storage import open_lake, zarr_store
from transforms.cube import open_cube, write_day
from transforms.grid import GridSpec
from transforms.monthly import month_days, monthly_means, months_of

GRID = GridSpec(1.0, (0.0, 40.0, 2.0, 41.0))  # 1 × 2 cells
NAN = np.nan


def _day(mean: list[float], unc: list[float], count: list[int], weight: list[float]) -> xr.Dataset:
    def a(v: list[float] | list[int], dtype: type) -> np.ndarray:
        return np.array([v], dtype=dtype)

    return xr.Dataset(
        {
            "mean": (("lat", "lon"), a(mean, np.float32)),
            "uncertainty": (("lat", "lon"), a(unc, np.float32)),
            "count": (("lat", "lon"), a(count, np.int32)),
            "weight": (("lat", "lon"), a(weight, np.float32)),
        }
    )


# cell 0: seen on both days; cell 1: only on day 2 (day 1 holds fill there)
DAY1 = _day([2.0, NAN], [0.5, NAN], [3, 0], [4.0, NAN])
DAY2 = _day([5.0, 7.0], [1.0, 0.25], [1, 2], [1.0, 16.0])


def test_two_days_combine_exactly() -> None:
    out = monthly_means(xr.concat([DAY1, DAY2], dim="time")).compute()
    # cell 0: weights 4 and 1 -> mean (4·2 + 1·5)/5 = 2.6; σ = √((4·0.5)² + (1·1)²)/5 = √5/5
    assert out["mean"].values[0, 0] == np.float32(2.6)
    assert out["uncertainty"].values[0, 0] == np.float32(np.sqrt(5.0) / 5.0)
    assert out["count"].values[0, 0] == 4 and out["weight"].values[0, 0] == 5.0
    # cell 1: day 2 alone
    assert out["mean"].values[0, 1] == 7.0 and out["uncertainty"].values[0, 1] == 0.25
    assert out["count"].values[0, 1] == 2 and out["weight"].values[0, 1] == 16.0
    assert out["count"].dtype == np.int32 and out["mean"].dtype == np.float32


def test_a_month_with_no_pixels_is_fill_and_bad_input_is_refused() -> None:
    empty = monthly_means(xr.concat([DAY1.isel(lon=[1])], dim="time"))
    assert np.isnan(empty["mean"].values).all() and int(empty["count"].sum()) == 0
    assert np.isnan(empty["weight"].values).all()
    with pytest.raises(ValueError, match="missing"):
        monthly_means(DAY1.drop_vars("weight").expand_dims("time"))


def test_month_helpers() -> None:
    assert month_days(dt.date(2020, 2, 17)) == (dt.date(2020, 2, 1), dt.date(2020, 2, 29))
    assert months_of([dt.date(2020, 3, 31), dt.date(2020, 2, 1), dt.date(2020, 3, 1)]) == [
        dt.date(2020, 2, 1),
        dt.date(2020, 3, 1),
    ]


def _commit(lake, spec, day: dt.date, fields: xr.Dataset) -> None:  # type: ignore[no-untyped-def]
    write_day(zarr_store(lake, cube_key(spec)), fields, day=day, spec=spec)
    commit_cube_days(
        lake,
        [
            {
                "cube": cube_id(spec),
                "day": day,
                "granules": [f"g-{day}"],
                "pixels": int(fields["count"].sum()),
                "observed_cells": int((fields["count"] > 0).sum()),
                "coverage": float((fields["count"] > 0).mean()),
                "committed": dt.datetime.now(dt.UTC),
            }
        ],
    )


def test_lake_months_follow_their_days_only(tmp_path: Path) -> None:
    lake = open_lake(str(tmp_path / "lake"))
    spec = cube_spec("no2", GRID)
    mar1, mar2, apr = dt.date(2020, 3, 1), dt.date(2020, 3, 31), dt.date(2020, 4, 2)
    for day, fields in ((mar1, DAY1), (mar2, DAY2), (apr, DAY2)):
        _commit(lake, spec, day, fields)
    assert update_monthly(lake, spec, [mar1, mar2, apr]) == [dt.date(2020, 3, 1), dt.date(2020, 4, 1)]
    root = Path(lake.path(monthly_key(spec)))
    apr_obj = root / "mean" / "c" / str((2020 - 2018) * 12 + 4 - 4) / "0" / "0"
    before = (apr_obj.read_bytes(), apr_obj.stat().st_mtime_ns)

    monthly = open_cube(zarr_store(lake, monthly_key(spec), read_only=True)).load()
    assert str(monthly["time"].values[0])[:10] == "2018-04-01" and monthly.sizes["time"] == 25
    assert monthly["mean"].sel(time="2020-03-01").values[0, 0] == np.float32(2.6)
    assert monthly["mean"].sel(time="2020-04-01").values[0, 0] == 5.0
    assert monthly.attrs["time_coverage_resolution"] == "P1M"

    _commit(lake, spec, mar1, _day([6.0, 1.0], [0.5, 0.5], [1, 1], [4.0, 4.0]))  # re-grid one March day
    assert update_monthly(lake, spec, [mar1]) == [dt.date(2020, 3, 1)]
    monthly = open_cube(zarr_store(lake, monthly_key(spec), read_only=True)).load()
    assert monthly["mean"].sel(time="2020-03-01").values[0, 0] == np.float32((4 * 6 + 5) / 5)
    assert monthly["mean"].sel(time="2020-03-01").values[0, 1] == np.float32((4 * 1 + 16 * 7) / 20)
    assert (apr_obj.read_bytes(), apr_obj.stat().st_mtime_ns) == before  # April untouched
    assert len(committed_days(lake, spec)) == 3

    assert publish_cube(lake, spec) == 3
    doc = json.loads(Path(lake.path(f"stac/s5p-no2-l3-monthly-{GRID.grid_id}/collection.json")).read_text())
    assert doc["cube:dimensions"]["time"]["step"] == "P1M"
    assert doc["extent"]["temporal"]["interval"][0][0].startswith("2020-03-01")
    assert (Path(lake.path("stac", doc["id"])) / doc["assets"]["zarr"]["href"]).resolve() == root.resolve()
    intake = yaml.safe_load(Path(publish_intake(lake).removeprefix("file://")).read_text())
    assert f"s5p_no2_l3_monthly_{GRID.grid_id}".replace("-", "_") in intake["aliases"]
