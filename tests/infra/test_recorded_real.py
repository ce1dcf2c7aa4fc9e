"""The source adapters over responses recorded from the real services (tests/data/recorded/*/real/, provenance in
its README), and the replay servers (tests/fakes/services.py) checked against those documents' shapes."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from infra.adapters import day_window, open_source
from infra.adapters.cdse import https_alternate
from infra.adapters.item_search import PageRequest, first_request, next_request, search_parameters
from infra.settings import get_settings
from infra.sources import granule_from_item, is_stac_api, search_granules
from tests.fakes.services import PC_COLLECTION, Replay, serve_services, simulated_catalog

RECORDED = Path(__file__).resolve().parents[1] / "data" / "recorded"
PC_ROOT = "https://planetarycomputer.microsoft.com/api/stac/v1/"
CDSE_NAME = "S5P_OFFL_L2__NO2____20211211T104909_20211211T123039_21566_02_020301_20211213T011704"


def _real(service: str, name: str) -> Any:
    return json.loads((RECORDED / service / "real" / name).read_text())


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return simulated_catalog(tmp_path_factory.mktemp("archive"), "2020-03-02", "2020-03-02", (4, 47, 12, 53))


@pytest.fixture
def replay(archive: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Replay]:
    with serve_services(archive) as r:
        monkeypatch.setenv("EOLAKE_SOURCE_URLS", json.dumps(r.source_urls()))
        get_settings.cache_clear()
        yield r
    get_settings.cache_clear()


# ---- Planetary Computer ----


def test_the_real_planetary_computer_landing_page_is_searched_by_post() -> None:
    landing = _real("planetary_computer", "landing.json")
    assert is_stac_api(landing)
    assert any(
        link.get("href", "").endswith("/collections/sentinel-5p-l2-netcdf") for link in landing["links"]
    )
    when = dt.datetime(2020, 3, 2, tzinfo=dt.UTC)
    params = search_parameters([PC_COLLECTION], when, when + dt.timedelta(days=1), limit=1000)
    request = first_request(PC_ROOT.rstrip("/"), landing, params)
    assert (request.method, request.href) == ("POST", PC_ROOT + "search")
    assert request.body == params


def test_the_real_planetary_computer_next_link_is_the_whole_search_again_with_its_token() -> None:
    page = _real("planetary_computer", "search_post_page.json")
    sent = {"limit": 10, "bbox": [-73.21, 43.99, -73.12, 44.05], "collections": ["naip"]}
    nxt = next_request(page, PageRequest("POST", PC_ROOT + "search", body=sent))
    assert nxt is not None and (nxt.method, nxt.href) == ("POST", PC_ROOT + "search")
    assert nxt.body == {**sent, "token": "next:naip:vt_m_4407363_sw_18_060_20180914_20190225"}
    # a NAIP item is no granule of ours: read, then left out
    assert [granule_from_item(item, "no2") for item in page["features"]] == [None]


@pytest.mark.parametrize("method", ["POST", "GET"])
def test_the_planetary_computer_replay_pages_as_the_real_service_does(replay: Replay, method: str) -> None:
    real = _real("planetary_computer", "search_post_page.json")
    replay.page_size = 1
    body: dict[str, Any] = {"collections": [PC_COLLECTION], "limit": 1}
    url = replay.pc_url + "search"
    if method == "POST":
        page = requests.post(url, json=body, timeout=30).json()
    else:
        page = requests.get(url, params={"collections": PC_COLLECTION, "limit": "1"}, timeout=30).json()
    assert page.keys() == real.keys()
    (nxt,) = [link for link in page["links"] if link["rel"] == "next"]
    assert [link["rel"] for link in page["links"]] == [link["rel"] for link in real["links"]]
    token = f"next:{PC_COLLECTION}:{page['features'][-1]['id']}"
    if method == "POST":
        (real_next,) = [link for link in real["links"] if link["rel"] == "next"]
        assert nxt.keys() == real_next.keys() and nxt["body"] == {**body, "token": token}
    else:
        assert nxt["method"] == "GET" and f"token={token.replace(':', '%3A')}" in nxt["href"]


def test_planetary_computer_search_walks_the_real_shaped_pages_to_the_end(replay: Replay) -> None:
    replay.page_size = 1
    found = search_granules(open_source("planetary-computer"), product="no2", start=_day()[0], end=_day()[1])
    assert sorted(g.granule_id for g in found) == sorted(g.id for g in replay.granules)
    assert len(replay.searches) == len(replay.granules) > 1


# ---- CDSE ----


def test_the_real_cdse_item_is_a_granule_downloaded_from_its_https_alternate() -> None:
    item = _real("cdse", "item_no2_offl_eometadatatool.json")
    g = granule_from_item(item, "no2")
    assert g is not None and g.granule_id == CDSE_NAME
    assert (g.name.product, g.name.mode, g.name.collection, g.name.processor_version) == (
        "no2",
        "OFFL",
        "02",
        "020301",
    )
    assert g.href == f"s3://eodata/Sentinel-5P/TROPOMI/L2__NO2___/2021/12/11/{CDSE_NAME}.nc"
    assert g.size == 1019014 and g.sha256 is None  # CDSE publishes an MD5 multihash (d50110…), not SHA-256
    assert https_alternate(item, g.href) == (
        "https://zipper.dataspace.copernicus.eu/odata/v1/Products(2bacadab-8ed8-56c0-b794-50f00d8e83e9)"
        f"/Nodes({CDSE_NAME}.nc)/$value"
    )
    assert https_alternate(item, "https://elsewhere/x.nc") is None  # an HTTP href is used as published


def test_cdse_serves_the_real_item_as_a_granule_with_its_zipper_href(replay: Replay) -> None:
    item = _real("cdse", "item_no2_offl_eometadatatool.json")
    replay.verbatim["cdse"] = [item]
    window = day_window(dt.date(2021, 12, 11), dt.date(2021, 12, 11))
    (g,) = search_granules(open_source("cdse"), product="no2", start=window[0], end=window[1])
    assert g.granule_id == CDSE_NAME and g.item == item
    assert g.href == https_alternate(item, item["assets"]["netcdf"]["href"])
    assert g.href.startswith("https://zipper.dataspace.copernicus.eu/odata/v1/Products(")
    assert replay.searches[-1]["collections"] == [
        "sentinel-5p-l2-no2-nrti",
        "sentinel-5p-l2-no2-offl",
        "sentinel-5p-l2-no2-rpro",
    ]


def test_the_cdse_replay_items_have_the_real_items_shape_and_download_with_a_token(
    replay: Replay, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = _real("cdse", "item_no2_offl_eometadatatool.json")
    page = requests.post(
        replay.cdse_url + "search", json={"collections": ["sentinel-5p-l2-no2-offl"], "limit": 1}, timeout=30
    ).json()
    (item,) = page["features"]
    assert item.keys() == real.keys() and item["properties"].keys() == real["properties"].keys()
    assert item["assets"].keys() == real["assets"].keys() == {"netcdf"}
    asset, real_asset = item["assets"]["netcdf"], real["assets"]["netcdf"]
    assert asset.keys() == real_asset.keys() and asset["alternate"].keys() == real_asset["alternate"].keys()
    assert asset["href"].startswith("s3://eodata/Sentinel-5P/TROPOMI/L2__NO2___/")
    assert asset["file:checksum"].startswith("d50110") and len(asset["file:checksum"]) == 38
    monkeypatch.setenv("EOLAKE_CDSE_USERNAME", replay.username)
    monkeypatch.setenv("EOLAKE_CDSE_PASSWORD", replay.password)
    get_settings.cache_clear()
    cdse = open_source("cdse")
    g = search_granules(cdse, product="no2", start=_day()[0], end=_day()[1])[0]
    (served_granule,) = [r for r in replay.granules if r.id == g.granule_id]
    assert (
        g.href
        == f"{replay.root}/cdse/odata/v1/Products({served_granule.uuid})/Nodes({g.granule_id}.nc)/$value"
    )
    assert requests.get(g.href, timeout=30).status_code == 401
    served = requests.get(g.href, headers=dict(cdse.authorize(g).headers), timeout=30)
    assert served.status_code == 200 and len(served.content) == g.size


def _day() -> tuple[dt.datetime, dt.datetime]:
    return day_window(dt.date(2020, 3, 2), dt.date(2020, 3, 2))
