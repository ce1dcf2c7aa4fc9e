"""CF-1.10 compliance of the cubes, checked by the IOOS compliance-checker (cf:1.10 suite) on a netCDF
export of a small daily cube and of its monthly cube: no failed check at the high or medium level."""

from __future__ import annotations

import ctypes.util
import datetime as dt
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr.storage

from infra.cubes import cube_spec, monthly_spec
from transforms.cube import CubeSpec, netcdf_encoding, open_cube, write_day
from transforms.grid import GridSpec
from transforms.monthly import monthly_means

GRID = GridSpec(0.5, (0.0, 40.0, 10.0, 50.0))


@pytest.fixture(scope="module")
def cf_checker() -> object:
    """The compliance-checker's CF suite. It needs cf-units, whose wheel bundles udunits2; where it does not
    (a source build), the system library is installed here (apt `libudunits2-0`)."""
    try:
        import cf_units
    except (ImportError, OSError):
        if ctypes.util.find_library("udunits2") is None:
            sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
            apt = shutil.which("apt-get")
            if apt is None:
                pytest.fail(
                    "cf-units needs udunits2: install libudunits2-0 (or udunits) with the system's package manager"
                )
            subprocess.run([*sudo, apt, "install", "-y", "libudunits2-0"], check=True, capture_output=True)
        import cf_units  # noqa: F401
    from importlib.metadata import entry_points

    from compliance_checker.suite import CheckSuite

    suite = CheckSuite()
    suite._load_checkers(
        [ep for ep in entry_points(group="compliance_checker.suites") if ep.name.startswith("cf")]
    )
    assert "cf:1.10" in suite.checkers
    return suite


def _fields(seed: int) -> xr.Dataset:
    rng = np.random.default_rng(seed)
    mean = (rng.random(GRID.shape) * 1e-4).astype(np.float32)
    count = rng.integers(0, 4, GRID.shape).astype(np.int32)
    mean[count == 0] = np.nan
    weight = np.where(count > 0, count * 1e8, np.nan).astype(np.float32)
    return xr.Dataset(
        {
            "mean": (("lat", "lon"), mean),
            "uncertainty": (("lat", "lon"), mean / 10),
            "count": (("lat", "lon"), count),
            "weight": (("lat", "lon"), weight),
        }
    )


def _failures(suite: object, path: Path) -> list[str]:
    from compliance_checker.base import BaseCheck

    ds = suite.load_dataset(str(path))  # type: ignore[attr-defined]
    results, errors = suite.run_all(ds, ["cf:1.10"], skip_checks=[])["cf:1.10"]  # type: ignore[attr-defined]
    assert errors == {}, errors  # the checker itself raised
    out = []
    for r in results:
        got, of = r.value if isinstance(r.value, tuple) else (int(bool(r.value)), 1)
        if r.weight in (BaseCheck.HIGH, BaseCheck.MEDIUM) and got < of:
            out.append(f"{r.name}: {r.msgs}")
    return out


def _check_cube(suite: object, spec: CubeSpec, days: list[tuple[dt.date, xr.Dataset]], tmp: Path) -> None:
    store = zarr.storage.LocalStore(tmp / "cube.zarr")
    for day, fields in days:
        write_day(store, fields, day=day, spec=spec)
    ds = open_cube(store)
    first = spec.day_index(days[0][0])
    part = ds.isel(time=slice(first, first + 2)).load()
    nc = tmp / "cube.nc"
    part.to_netcdf(nc, encoding=netcdf_encoding(part))
    assert _failures(suite, nc) == []


def test_daily_cube_is_cf_compliant(cf_checker: object, tmp_path: Path) -> None:
    spec = cube_spec("no2", GRID)
    _check_cube(
        cf_checker, spec, [(dt.date(2020, 3, 3), _fields(1)), (dt.date(2020, 3, 4), _fields(2))], tmp_path
    )


def test_monthly_cube_is_cf_compliant(cf_checker: object, tmp_path: Path) -> None:
    spec = monthly_spec(cube_spec("no2", GRID))
    month = monthly_means(xr.concat([_fields(1), _fields(2)], dim="time"))
    _check_cube(cf_checker, spec, [(dt.date(2020, 3, 1), month), (dt.date(2020, 4, 1), _fields(3))], tmp_path)


def test_the_checker_catches_a_broken_cube(cf_checker: object, tmp_path: Path) -> None:
    """The same check fails on a cube with a wrong unit and a coordinate _FillValue (the check can fail)."""
    spec = cube_spec("no2", GRID)
    store = zarr.storage.LocalStore(tmp_path / "cube.zarr")
    write_day(store, _fields(1), day=dt.date(2020, 3, 3), spec=spec)
    part = open_cube(store).isel(time=slice(-1, None)).load()
    part["mean"].attrs["units"] = "parsecs of NO2"
    nc = tmp_path / "bad.nc"
    part.to_netcdf(nc)  # default encoding: _FillValue on lat/lon
    failures = _failures(cf_checker, nc)
    assert any("units" in f for f in failures) and any("_FillValue" in f for f in failures), failures
