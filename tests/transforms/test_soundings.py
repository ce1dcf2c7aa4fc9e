"""OCO-2/OCO-3/ACOS Lite, NIES GOSAT and TanSat files: the writers' layout, the readers' exact values, fills,
quality flags, lean reads, bad files, and gridding through the one dispatch."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest

from transforms.errors import GranuleReadError
from transforms.gosat import write_nies_l2
from transforms.granules import format_nies_name, format_oco_lite_name, format_tansat_name, parse_granule_name
from transforms.grid import GridSpec
from transforms.observations import grid_granules, open_observations, reader_for
from transforms.oco import write_lite
from transforms.products import get_product
from transforms.s5p import open_observations as open_via_s5p
from transforms.tansat import write_tansat_lite

DAY = dt.date(2020, 12, 31)
TIMES = np.array(
    ["2020-12-31T13:00:00.300", "2020-12-31T13:00:00.633", "2020-12-31T13:00:01.000"], "datetime64[ms]"
)
LAT = np.array([10.0, 10.02, 10.04])
LON = np.array([20.0, 20.01, 179.99])
XCO2 = np.array([410.25, np.nan, 412.5])
UNC = np.array([0.5, 0.75, 0.625])
FLAG = np.array([0, 0, 1])


def _vertices() -> tuple[np.ndarray, np.ndarray]:
    vlat = LAT[:, None] + np.array([-0.01, -0.01, 0.01, 0.01])
    vlon = LON[:, None] + np.array([-0.01, 0.01, 0.01, -0.01])
    return vlat, vlon


def oco2_file(tmp_path: Path, **kw: object) -> Path:
    name = format_oco_lite_name("oco2-xco2", day=DAY, production_time=dt.datetime(2022, 7, 29, 1, 28, 24))
    vlat, vlon = _vertices()
    path = tmp_path / name
    args: dict[str, object] = (
        dict(
            name=parse_granule_name(name),
            time=TIMES,
            latitude=LAT,
            longitude=LON,
            xco2=XCO2,
            xco2_uncertainty=UNC,
            xco2_quality_flag=FLAG,
            vertex_latitude=vlat,
            vertex_longitude=vlon,
            footprint=[1, 2, 8],
            orbit=34567,
        )
        | kw
    )
    write_lite(path, **args)  # type: ignore[arg-type]
    return path


def acos_file(tmp_path: Path) -> Path:
    name = format_oco_lite_name(
        "acos-xco2", day=DAY, build="B9213A", production_time=dt.datetime(2020, 3, 6), release=""
    )
    path = tmp_path / name
    write_lite(
        path,
        name=parse_granule_name(name),
        time=TIMES,
        latitude=LAT,
        longitude=LON,
        xco2=XCO2,
        xco2_uncertainty=UNC,
        xco2_quality_flag=FLAG,
    )
    return path


def nies_file(tmp_path: Path) -> Path:
    path = tmp_path / format_nies_name(day=DAY, version="0295", revision="20210615")
    write_nies_l2(
        path,
        name=parse_granule_name(path.name),
        time=TIMES,
        latitude=LAT,
        longitude=LON,
        xco2=XCO2,
        xco2_error=UNC,
    )
    return path


def tansat_file(tmp_path: Path) -> Path:
    path = tmp_path / format_tansat_name(day=dt.date(2017, 3, 1), mode="GL")
    write_tansat_lite(
        path,
        name=parse_granule_name(path.name),
        time=TIMES,
        latitude=LAT,
        longitude=LON,
        xco2=XCO2,
        xco2_uncertainty=UNC,
        xco2_quality_flag=FLAG,
    )
    return path


def test_oco2_lite_layout_matches_the_real_files(tmp_path: Path) -> None:
    with h5py.File(oco2_file(tmp_path)) as f:
        assert f.attrs["BuildId"] == b"B11.0.14A" and f.attrs["title"] == b"OCO-2 L2 Lite Output"
        assert {"Retrieval", "Sounding", "Meteorology"} <= set(f)
        assert f["sounding_id"].dtype == np.int64 and f["xco2_quality_flag"].dtype == np.int8
        assert f["vertex_latitude"].shape == (3, 4) and f["pressure_weight"].shape == (3, 20)
        assert f["xco2"].attrs["missing_value"] == np.float32(-999999.0)
        assert f["xco2"][1] == np.float32(-999999.0)  # NaN is written as the missing value
        assert f["time"].attrs["units"] == b"seconds since 1970-01-01 00:00:00"
        assert f["time"][0] == pytest.approx(1609419600.3)
        assert list(f["sounding_id"][()]) == [2020123113000031, 2020123113000062, 2020123113000108]
        assert int(f["Sounding/orbit"][0]) == 34567 and "psurf" in f["Retrieval"]


READERS = [
    (oco2_file, "oco2-xco2", [1.0, 1.0, 0.0]),  # xco2_quality_flag == 0 is good
    (acos_file, "acos-xco2", [1.0, 1.0, 0.0]),
    (nies_file, "gosat-xco2", [1.0, 0.0, 1.0]),  # no flag: a valid XCO2 is good
    (tansat_file, "tansat-xco2", [1.0, 1.0, 0.0]),
]


@pytest.mark.parametrize(("make", "product", "qa"), READERS)
def test_every_reader_gives_the_exact_values(
    tmp_path: Path, make: Callable[[Path], Path], product: str, qa: list[float]
) -> None:
    path = make(tmp_path)
    obs = open_observations(path, product=product)
    assert obs.sizes == {"pixel": 3, "corner": 4}
    np.testing.assert_array_equal(obs["value"].values, np.array([410.25, np.nan, 412.5], np.float32))
    np.testing.assert_array_equal(obs["uncertainty"].values, UNC.astype(np.float32))
    np.testing.assert_array_equal(obs["qa"].values, qa)
    np.testing.assert_array_equal(obs["time"].values, TIMES.astype("datetime64[ns]"))
    assert obs["value"].attrs["source_variable"] == f"/{get_product(product).value_var}"
    assert obs.attrs["units"] == "ppm" and obs.attrs["granule_id"] == path.stem


@pytest.mark.parametrize(
    ("product", "match"),
    [
        ("acos-xco2", r"product mismatch.*oco2-xco2"),
        ("gosat-xco2", "not a GOSAT file"),
        ("tansat-xco2", "not a TanSat"),
    ],
)
def test_readers_refuse_another_missions_file(tmp_path: Path, product: str, match: str) -> None:
    with pytest.raises(GranuleReadError, match=match):
        open_observations(oco2_file(tmp_path), product=product)


def test_oco2_reader_flag_and_vertices(tmp_path: Path) -> None:
    obs = open_observations(oco2_file(tmp_path), product="oco2-xco2")
    np.testing.assert_array_equal(obs["quality_flag"].values, FLAG)
    np.testing.assert_array_equal(obs["latitude_bounds"].values, _vertices()[0].astype(np.float32))
    np.testing.assert_array_equal(obs["longitude_bounds"].values, _vertices()[1].astype(np.float32))
    assert obs.attrs["granule_id"] == "oco2_LtCO2_201231_B11014Ar_220729012824s"


def test_lean_read_never_touches_the_vertices(tmp_path: Path) -> None:
    path = oco2_file(tmp_path)
    with h5py.File(path, "a") as f:  # a file without vertices still reads for centre binning
        del f["vertex_latitude"], f["vertex_longitude"]
    obs = open_observations(path, product="oco2-xco2", corners=False)
    assert "latitude_bounds" not in obs and obs.sizes["pixel"] == 3
    with pytest.raises(GranuleReadError, match="vertex_latitude"):
        open_observations(path, product="oco2-xco2", corners=True)


def test_acos_has_no_vertices_and_gets_square_footprints(tmp_path: Path) -> None:
    path = acos_file(tmp_path)
    with h5py.File(path) as f:
        assert "vertex_latitude" not in f and f.attrs["BuildId"] == b"B9.2.13A"
    obs = open_observations(path, product="acos-xco2")
    side_deg = 9.3 / 111.195
    lat_b = obs["latitude_bounds"].values
    assert lat_b[0, 2] - lat_b[0, 0] == pytest.approx(side_deg, rel=1e-5)
    lon_b = obs["longitude_bounds"].values[2]  # wrapped across the antimeridian
    assert lon_b.max() <= 180 and lon_b.min() >= -180 and (lon_b < 0).any()
    with pytest.raises(GranuleReadError, match=r"product mismatch.*acos-xco2"):
        open_observations(path, product="oco2-xco2")


def test_nies_gosat_layout_and_reader(tmp_path: Path) -> None:
    path = nies_file(tmp_path)
    with h5py.File(path) as f:
        assert f["Data/mixingRatio/XCO2"][1] == np.float32(-9999.0)
        assert f["scanAttribute/time"][0] == b"2020-12-31 13:00:00.300"
        assert f["Global/metadata/satelliteName"][()] == b"GOSAT"
    obs = open_observations(path, product="gosat-xco2", corners=False)
    assert "latitude_bounds" not in obs and obs.attrs["product_version"] == "0295"


@pytest.mark.parametrize(("make", "product"), [(make, product) for make, product, _ in READERS])
@pytest.mark.parametrize("damage", ["empty", "truncated", "garbage"])
def test_bad_files_raise_a_clear_read_error(tmp_path: Path, make: object, product: str, damage: str) -> None:
    data = make(tmp_path).read_bytes()  # type: ignore[operator]
    bad = {
        "empty": b"",
        "truncated": data[: len(data) // 2],
        "garbage": b"\x89HDF\r\n\x1a\n" + b"\x00" * 500,
    }[damage]
    with pytest.raises(GranuleReadError, match=r"empty|truncated|corrupt|not an HDF5"):
        open_observations(io.BytesIO(bad), product=product)
    path = tmp_path / f"bad-{damage}.nc4"
    path.write_bytes(bad)
    with pytest.raises(GranuleReadError):
        open_via_s5p(path, product=product)  # the S5P entry point hands it to the family's reader


def test_every_product_has_a_reader() -> None:
    for product in ("no2", "oco2-xco2", "oco3-xco2", "acos-xco2", "gosat-xco2", "tansat-xco2"):
        assert callable(reader_for(product))
    assert reader_for("oco3-xco2") is reader_for("acos-xco2")


def test_gridding_keeps_only_flag_zero_soundings(tmp_path: Path) -> None:
    """Through the gridding entry point: flag-1 and missing soundings are dropped, the rest binned exactly."""
    path = oco2_file(
        tmp_path,
        latitude=np.array([10.1, 10.2, 10.3]),
        longitude=np.array([20.1, 20.2, 20.3]),
        xco2=np.array([410.0, 414.0, 500.0]),
        xco2_uncertainty=np.array([1.0, 1.0, 1.0]),
        xco2_quality_flag=np.array([0, 0, 1]),
    )
    grid = GridSpec(1.0, (20.0, 10.0, 22.0, 12.0))
    with open(path, "rb") as f:
        fields, stats = grid_granules([f], day=DAY, grid=grid, product=get_product("oco2-xco2"))
    assert stats.pixels_read == 3 and stats.pixels_used == 2
    assert float(fields["mean"].sel(lat=10.5, lon=20.5)) == pytest.approx(412.0)
    assert int(fields["count"].sum()) == 2


@pytest.mark.parametrize("make", [oco2_file, acos_file])
def test_footprint_binning_conserves_the_soundings(tmp_path: Path, make: object) -> None:
    """Footprint binning of vertex footprints (OCO-2) and nominal squares (ACOS): the soundings' weights are
    spread over the cells they cover and sum back to the centre binning's total; the means agree on a fine grid
    cell that one footprint covers alone."""
    path = make(tmp_path)  # type: ignore[operator]
    grid = GridSpec(0.5, (19.0, 9.0, 21.0, 11.0))
    product = get_product("oco2-xco2" if "oco2" in path.name else "acos-xco2")
    with open(path, "rb") as f:
        centre, _ = grid_granules([f], day=DAY, grid=grid, product=product, method="centre")
    with open(path, "rb") as f:
        spread, stats = grid_granules([f], day=DAY, grid=grid, product=product, method="footprint")
    assert stats.pixels_used == 1  # sounding 2 is missing, sounding 3 flagged (and outside the grid)
    assert float(spread["weight"].sum()) == pytest.approx(float(centre["weight"].sum()), rel=1e-6)
    assert float(np.nanmax(spread["mean"].values)) == pytest.approx(410.25, rel=1e-6)
