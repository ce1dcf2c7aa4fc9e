"""The intake catalog generator: entries from STAC dicts, parameters that subset lazily, metadata, no secrets."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import fsspec
import intake
import numpy as np
import pandas as pd
import pytest
import xarray as xr
import yaml

from catalog.intake import (
    build_intake_catalog,
    cube_entry_from_stac,
    lake_extent,
    table_entries_from_stac,
    write_intake_catalog,
)


def _cube_collection(cid: str, west: float, east: float, start: str, end: str) -> dict[str, Any]:
    return {
        "id": cid,
        "title": f"title {cid}",
        "description": f"about {cid}",
        "license": "other",
        "links": [{"rel": "license", "href": "https://sentinels.copernicus.eu/terms"}],
        "providers": [{"name": "ESA / Copernicus"}, {"name": "eolake"}],
        "extent": {
            "spatial": {"bbox": [[west, 0.0, min(east, 180.0), 2.0]]},
            "temporal": {"interval": [[f"{start}T00:00:00Z", f"{end}T23:59:59Z"]]},
        },
        "cube:dimensions": {"lon": {"extent": [west, east]}, "lat": {"extent": [0.0, 2.0]}},
        "cube:variables": {"mean": {"type": "data", "unit": "mol m-2", "description": "mean"}},
        "assets": {"zarr": {"href": "../../cubes/x.zarr", "xarray:open_kwargs": {"zarr_format": 3}}},
    }


def _release(rid: str, start: str, end: str) -> dict[str, Any]:
    return {
        "id": f"emissions-{rid}",
        "properties": {
            "eolake:release": rid,
            "eolake:method_version": "0.1.0",
            "start_datetime": f"{start}T00:00:00Z",
            "end_datetime": f"{end}T23:59:59Z",
            "table:columns": [{"name": "value", "description": "MtCO2/day"}],
            "table:row_count": 3,
        },
    }


def test_entries_carry_stac_metadata_and_extents() -> None:
    cube = cube_entry_from_stac(
        "s5p-no2-l3-monthly-1deg",
        _cube_collection("s5p-no2-l3-monthly-1deg", 170, 190, "2020-01-01", "2021-02-01"),
        "k",
    )
    assert cube.name == "s5p_no2_l3_monthly_1deg" and cube.bbox == (170.0, 0.0, 190.0, 2.0)  # across 180°
    assert (cube.start, cube.end) == ("2020-01-01", "2021-02-01")
    assert cube.metadata["license_url"] == "https://sentinels.copernicus.eu/terms"
    assert (
        cube.metadata["citation"]
        == "Contains modified Copernicus Sentinel data 2020-2021, processed by eolake."
    )
    assert cube.metadata["units"] == ["mol m-2"] and cube.open_kwargs == {"zarr_format": 3}
    releases = [
        (_release("B", "2020-01-01", "2020-01-03"), "t/B"),
        (_release("A", "2020-01-01", "2020-01-02"), "t/A"),
    ]
    tables = table_entries_from_stac({"id": "em", "license": "CC-BY-4.0"}, releases)
    assert [t.name for t in tables] == ["emissions_A", "emissions_B", "emissions"]
    assert tables[-1].key == "t/B" and tables[-1].metadata["license"] == "CC-BY-4.0"
    assert lake_extent([cube], tables) == ("2020-01-01", "2021-02-01", (170.0, 0.0, 190.0, 2.0))


@pytest.fixture
def tiny_lake(tmp_path: Path) -> Path:
    lon = np.arange(0.25, 4, 0.5)
    lat = np.arange(0.25, 2, 0.5)
    time = pd.date_range("2020-03-01", periods=5, freq="D")
    ds = xr.Dataset(
        {"mean": (("time", "lat", "lon"), np.random.default_rng(0).random((5, lat.size, lon.size)))},
        coords={"time": time, "lat": lat, "lon": lon},
    )
    with warnings.catch_warnings():  # zarr: consolidated metadata is not in the v3 spec (the lake uses it)
        warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
        ds.to_zarr(tmp_path / "cubes" / "x.zarr", zarr_format=3, consolidated=True)
    table = pd.DataFrame(
        {"date": pd.date_range("2020-03-01", periods=4), "iso3": "DEU", "value": [1.0, 2, 3, 4]}
    )
    (tmp_path / "tables" / "A").mkdir(parents=True)
    table.to_parquet(tmp_path / "tables" / "A" / "part.parquet")
    return tmp_path


def test_catalog_reads_lazily_with_parameters_and_holds_no_secrets(tiny_lake: Path) -> None:
    doc_c = _cube_collection("c-1", 0.0, 4.0, "2020-03-02", "2020-03-04")
    cube = cube_entry_from_stac("c-1", doc_c, "cubes/x.zarr")
    tables = table_entries_from_stac({"id": "em"}, [(_release("A", "2020-03-01", "2020-03-04"), "tables/A")])
    doc = build_intake_catalog([cube], tables, description="d", stac_api="http://127.0.0.1:1/api/")
    write_intake_catalog(fsspec.filesystem("file"), str(tiny_lake / "catalog.yaml"), doc)
    text = (tiny_lake / "catalog.yaml").read_text()
    assert (
        str(tiny_lake) not in text and "secret" not in text and "key:" not in text
    )  # relative, no credentials
    assert yaml.safe_load(text)["user_parameters"]["start"]["default"] == "2020-03-01"

    cat = intake.open_catalog(str(tiny_lake / "catalog.yaml"))
    assert sorted(cat) == ["c_1", "emissions", "emissions_A", "stac", "stac_search"]
    full = cat.c_1.read()
    assert full.sizes == {"time": 4, "lat": 4, "lon": 8}  # the lake's days 03-01..03-04, all cells
    assert type(full["mean"].data).__module__.startswith("dask")
    sub = cat(start="2020-03-03", end="2020-03-03", bbox=[1.0, 0.0, 2.0, 1.0]).c_1.read()
    assert (
        list(sub.lon.values) == [1.25, 1.75]
        and list(sub.lat.values) == [0.25, 0.75]
        and sub.sizes["time"] == 1
    )
    assert type(sub["mean"].data).__module__.startswith("dask")
    assert cat.c_1.metadata["variables"]["mean"]["unit"] == "mol m-2" and cat.c_1.metadata["kind"] == "cube"
    assert list(cat(start="2020-03-02", end="2020-03-03").emissions.read().value) == [2.0, 3.0]
    search = yaml.safe_load(text)["entries"][yaml.safe_load(text)["aliases"]["stac_search"]]
    assert search["kwargs"]["query"]["collections"] == ["c-1"]


def test_search_entry_defaults_to_the_environment() -> None:
    doc = build_intake_catalog([], [], description="d")
    data = next(
        d for d in doc["data"].values() if d["datatype"].endswith("STACJSON") and "env(" in d["kwargs"]["url"]
    )
    assert data["kwargs"]["url"] == "{env(EOLAKE_STAC_API)}"
