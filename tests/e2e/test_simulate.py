"""``eolake simulate``: granules in the real S5P structure (compared with a real KNMI header) and a PC-shaped
static STAC catalog; an antimeridian domain gives swaths on both sides and split footprints."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pystac
import pytest

from catalog.validation import validate_stac
from transforms.s5p import open_observations

REAL = Path(__file__).resolve().parents[1] / "data" / "s5p"
REAL_NO2 = next(REAL.glob("S5P_OFFL_L2__NO2____*.nc"))


def _groups(f: h5py.File) -> set[str]:
    out: set[str] = set()
    f.visititems(
        lambda name, obj: out.add(name) if isinstance(obj, h5py.Group) and name.count("/") < 2 else None
    )
    return out


def test_antimeridian_domain_and_real_structure(cli, tmp_path: Path) -> None:
    out = tmp_path / "archive"
    cli(
        "simulate",
        "--out",
        str(out),
        "--bbox",
        "170,-25,190,-10",
        "--start",
        "2020-03-02",
        "--end",
        "2020-03-02",
    )
    catalog = pystac.Catalog.from_file(str(out / "catalog.json"))
    (collection,) = list(catalog.get_children())
    assert collection.id == "sentinel-5p-l2-netcdf"
    items = list(catalog.get_items(recursive=True))
    assert items
    crossing = [i for i in items if i.geometry["type"] == "MultiPolygon"]
    assert crossing and all(i.bbox[0] > i.bbox[2] for i in crossing)
    for item in items:
        validate_stac(item)
        assert item.properties["s5p:product_name"] == "no2"
        assert set(item.assets) == {"no2"}
        obs = open_observations(item.assets["no2"].get_absolute_href(), product="no2")
        assert obs.sizes["pixel"] > 1000
    lon = open_observations(crossing[0].assets["no2"].get_absolute_href(), product="no2")["longitude"].values
    assert (lon > 170).any() and (lon < -170).any() and np.nanmax(np.abs(lon)) <= 180

    path = crossing[0].assets["no2"].get_absolute_href()
    with h5py.File(path) as sim, h5py.File(REAL_NO2) as real:
        assert _groups(real) - {
            "METADATA/ESA_METADATA",
            "METADATA/EOP_METADATA",
            "METADATA/ISO_METADATA",
        } <= _groups(sim)
        assert {"id", "orbit", "time_reference", "time_coverage_start", "processor_version"} <= set(sim.attrs)
        for var in ("latitude", "longitude", "qa_value", "nitrogendioxide_tropospheric_column"):
            dims = [d.label or next(iter(d.keys()), "").split("/")[-1] for d in sim["PRODUCT"][var].dims]
            assert [d.split("/")[-1] for d in dims] == ["time", "scanline", "ground_pixel"], (var, dims)
        qa = sim["PRODUCT/qa_value"]
        assert qa.dtype == np.uint8 and np.asarray(qa.attrs["scale_factor"]).ravel()[0] == np.float32(0.01)
        assert sim["PRODUCT/SUPPORT_DATA/GEOLOCATIONS/latitude_bounds"].shape[-1] == 4
        assert sim["PRODUCT"]["ground_pixel"].shape == real["PRODUCT"]["ground_pixel"].shape == (450,)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["simulate", "--out", "a", "--product", "xco2"],
            "unknown product 'xco2': choose one of no2, oco2-xco2",
        ),
        (
            [
                "simulate",
                "--out",
                "a",
                "--product",
                "tansat-xco2",
                "--start",
                "2016-01-01",
                "--end",
                "2016-01-02",
            ],
            "--start 2016-01-01 is before TanSat data begins (2017-03-01)",
        ),
        (
            ["grid", "--product", "oco2-xco2", "--start", "2014-01-01", "--end", "2014-01-02", "--lake", "l"],
            "--start 2014-01-01 is before OCO-2 data begins (2014-09-06)",
        ),
    ],
)
def test_product_arguments_fail_in_one_line(
    offline_cli, tmp_path: Path, args: list[str], message: str
) -> None:
    proc = offline_cli(*args, check=False)
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("eolake: error: ") and message in line
    assert not (tmp_path / "a").exists()
