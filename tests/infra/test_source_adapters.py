"""Source adapters against replayed services (tests/fakes/services.py): search, paging, signing, OAuth2 token
flow, expiry and refresh, refused credentials; the sources file; plain directory listings."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from infra.adapters import day_window, load_sources, open_source
from infra.adapters.registry import SourcesFileError, UnknownSourceError
from infra.adapters.tokens import TokenCache
from infra.harvest import SourceGate, harvest_granule
from infra.http import UpstreamAuthError
from infra.settings import get_settings
from infra.sources import redact_url, search_granules
from infra.storage import open_lake
from tests.fakes.services import Replay, serve_services, simulated_catalog

START, END = dt.date(2020, 3, 2), dt.date(2020, 3, 3)
BBOX = (4.0, 47.0, 12.0, 53.0)


@pytest.fixture(autouse=True)
def _fresh_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Settings are cached per process: read them afresh in each test, and leave none behind."""
    get_settings.cache_clear()
    yield
    monkeypatch.undo()
    get_settings.cache_clear()


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return simulated_catalog(tmp_path_factory.mktemp("archive"), START.isoformat(), END.isoformat(), BBOX)


@pytest.fixture
def replay(archive: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Replay]:
    with serve_services(archive) as r:
        import json

        monkeypatch.setenv("EOLAKE_SOURCE_URLS", json.dumps(r.source_urls()))
        monkeypatch.setenv("EOLAKE_CDSE_USERNAME", r.username)
        monkeypatch.setenv("EOLAKE_CDSE_PASSWORD", r.password)
        get_settings.cache_clear()
        yield r
    get_settings.cache_clear()


class Clock:
    def __init__(self) -> None:
        self.now = dt.datetime.now(dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now


WINDOW = day_window(START, END)


# ---- the sources file ----


def test_the_committed_sources_file_names_cdse_with_four_connections() -> None:
    sources = load_sources()
    assert sources["cdse"].max_connections == 4 and sources["cdse"].auth == "oauth2"
    assert sources["cdse"].collections_for("no2", "offl") == ["sentinel-5p-l2-no2-offl"]
    assert len(sources["cdse"].collections_for("no2")) == 3
    assert sources["planetary-computer"].collections_for("co") == ["sentinel-5p-l2-netcdf"]
    assert all(s.page_size is None for s in sources.values())  # each adapter's default (1000; CMR 250)


def test_a_sources_file_entry_may_set_its_search_page_size(tmp_path: Path) -> None:
    path = tmp_path / "sources.yaml"
    path.write_text("sources:\n  small:\n    kind: stac-api\n    url: http://x\n    page_size: 100\n")
    assert load_sources(path)["small"].page_size == 100


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("kind: ftp\n    url: x", "source 'bad': kind 'ftp' is not one of"),
        ("kind: stac-api", "source 'bad': url is required"),
        ("kind: stac-api\n    url: x\n    max_connections: 0", "max_connections must be a whole number"),
        ("kind: cdse\n    url: x\n    auth: oauth2", "auth oauth2 needs token_url"),
        ("kind: stac-api\n    url: x\n    password: hunter2", "unknown key(s) password"),
        ("kind: stac-api\n    url: x\n    collections: [a, b]", "collections must map a product"),
        ("kind: stac-api\n    url: x\n    page_size: 0", "page_size must be a whole number from 1 to 10000"),
    ],
)
def test_a_bad_sources_file_entry_is_one_clear_line(tmp_path: Path, entry: str, message: str) -> None:
    path = tmp_path / "sources.yaml"
    path.write_text(f"sources:\n  bad:\n    {entry}\n")
    with pytest.raises(SourcesFileError) as info:
        load_sources(path)
    assert message in str(info.value) and str(path) in str(info.value)
    assert "\n" not in str(info.value)


def test_an_unknown_source_name_lists_the_configured_ones() -> None:
    with pytest.raises(UnknownSourceError) as info:
        open_source("copernicus")
    names = ", ".join(sorted(load_sources()))
    assert str(info.value) == (
        f"unknown source 'copernicus': choose one of {names} or give a STAC catalog/API URL or path"
    )
    assert "cdse" in names and "planetary-computer" in names


# ---- Planetary Computer ----


def test_planetary_computer_search_matches_properties_across_pages(replay: Replay) -> None:
    replay.page_size = 1
    pc = open_source("planetary-computer")
    found = search_granules(pc, product="no2", start=WINDOW[0], end=WINDOW[1])
    assert sorted(g.granule_id for g in found) == sorted(g.id for g in replay.granules)
    assert len(replay.searches) == len(replay.granules)  # one page per granule, next links followed
    assert replay.searches[0]["query"] == {"s5p:product_name": {"eq": "no2"}}
    assert search_granules(pc, product="co", start=WINDOW[0], end=WINDOW[1]) == []
    assert search_granules(pc, product="no2", start=WINDOW[0], end=WINDOW[1], timeliness="nrti") == []
    assert replay.searches[-1]["query"]["s5p:processing_mode"] == {"eq": "NRTI"}


def test_planetary_computer_signs_hrefs_with_one_cached_token_and_renews_a_refused_one(
    replay: Replay,
) -> None:
    pc = open_source("planetary-computer")
    granules = search_granules(pc, product="no2", start=WINDOW[0], end=WINDOW[1])
    assert requests.get(granules[0].href, timeout=30).status_code == 403  # unsigned
    signed = [pc.authorize(g) for g in granules]
    assert replay.sas_requests == ["sentinel-5p-l2-netcdf"]  # one token for the whole collection
    assert all("sig=" in d.href and "sig=" not in redact_url(d.href) for d in signed)
    assert requests.get(signed[0].href, timeout=30).content == replay.granules[0].path.read_bytes()
    replay.revoke()  # e.g. the service rotated its keys
    assert requests.get(signed[0].href, timeout=30).status_code == 403
    renewed = pc.authorize(granules[0], refresh=True)
    assert len(replay.sas_requests) == 2
    assert requests.get(renewed.href, timeout=30).status_code == 200


def test_planetary_computer_token_is_renewed_before_it_expires(replay: Replay) -> None:
    pc = open_source("planetary-computer")
    clock = Clock()
    pc.tokens = TokenCache(pc._fetch_token, now=clock)  # type: ignore[attr-defined]
    g = search_granules(pc, product="no2", start=WINDOW[0], end=WINDOW[1])[0]
    first = pc.authorize(g)
    assert pc.authorize(g) == first and len(replay.sas_requests) == 1
    clock.now += dt.timedelta(seconds=replay.sas_lifetime_s - 30)  # within the expiry margin
    assert pc.authorize(g) != first and len(replay.sas_requests) == 2


# ---- CDSE ----


def test_cdse_searches_one_collection_per_timeliness_and_names_granules_from_odata_items(
    replay: Replay,
) -> None:
    cdse = open_source("cdse")
    found = search_granules(cdse, product="no2", start=WINDOW[0], end=WINDOW[1])
    assert sorted(g.granule_id for g in found) == sorted(g.id for g in replay.granules)
    assert all(g.href.endswith(")/$value") and g.size is not None for g in found)  # name from title/alternate
    assert sorted(replay.searches[0]["collections"]) == [
        "sentinel-5p-l2-no2-nrti",
        "sentinel-5p-l2-no2-offl",
        "sentinel-5p-l2-no2-rpro",
    ]
    search_granules(cdse, product="no2", start=WINDOW[0], end=WINDOW[1], timeliness="offl")
    assert replay.searches[-1]["collections"] == ["sentinel-5p-l2-no2-offl"]
    assert replay.token_grants == []  # searching needs no login


def test_cdse_logs_in_once_refreshes_before_expiry_and_logs_in_again_when_the_refresh_token_is_gone(
    replay: Replay,
) -> None:
    cdse = open_source("cdse")
    clock = Clock()
    cdse.tokens = TokenCache(cdse._fetch_token, now=clock)  # type: ignore[attr-defined]
    g = search_granules(cdse, product="no2", start=WINDOW[0], end=WINDOW[1])[0]
    first = cdse.authorize(g)
    assert cdse.authorize(g) == first and replay.token_grants == ["password"]
    assert first.headers["Authorization"].startswith("Bearer ")
    assert requests.get(g.href, headers=dict(first.headers), timeout=30).status_code == 200
    assert requests.get(g.href, timeout=30).status_code == 401
    clock.now += dt.timedelta(seconds=replay.access_lifetime_s)
    second = cdse.authorize(g)
    assert replay.token_grants == ["password", "refresh_token"] and second != first
    replay.revoke()
    clock.now += dt.timedelta(seconds=replay.access_lifetime_s)
    third = cdse.authorize(g)
    assert replay.token_grants == ["password", "refresh_token", "refresh_token", "password"]
    assert requests.get(g.href, headers=dict(third.headers), timeout=30).status_code == 200
    assert "Bearer" not in repr(third) and third.headers["Authorization"][7:] not in repr(third)


def test_a_refused_download_gets_one_new_token_then_succeeds(replay: Replay, tmp_path: Path) -> None:
    cdse = open_source("cdse")
    gate = SourceGate(cdse)
    lake = open_lake(str(tmp_path / "lake"))
    granules = search_granules(cdse, product="no2", start=WINDOW[0], end=WINDOW[1])
    cdse.authorize(granules[0])  # a token that the service then revokes
    replay.revoke()
    row = harvest_granule(granules[0], lake, source="cdse", gate=gate)
    assert row["status"] == "harvested"
    assert [s for _, s in replay.downloads] == [401, 200]
    assert replay.token_grants == ["password", "refresh_token", "password"]


def test_cdse_downloads_are_verified_against_the_md5_it_publishes(replay: Replay, tmp_path: Path) -> None:
    cdse = open_source("cdse")
    gate = SourceGate(cdse)
    lake = open_lake(str(tmp_path / "lake"))
    g = search_granules(cdse, product="no2", start=WINDOW[0], end=WINDOW[1])[0]
    served = next(r for r in replay.granules if r.id == g.granule_id)
    assert g.sha256 is None and g.md5 == hashlib.md5(served.path.read_bytes()).hexdigest()
    replay.corrupt_downloads.add(g.granule_id)
    row = harvest_granule(g, lake, source="cdse", gate=gate)
    assert row["status"] == "quarantined" and row["key"] is None
    got = hashlib.md5(served.path.read_bytes()[::-1]).hexdigest()
    assert row["reason"] == f"checksum mismatch: md5 {got} != upstream {g.md5}"
    assert not [p for p in Path(lake.path("raw")).rglob("*") if p.is_file()]
    replay.corrupt_downloads.clear()
    row = harvest_granule(g, lake, source="cdse", gate=gate)
    assert row["status"] == "harvested"
    assert Path(lake.path(row["key"])).read_bytes() == served.path.read_bytes()


def test_a_download_refused_with_a_new_token_too_stops_the_source_without_a_retry_storm(
    replay: Replay, tmp_path: Path
) -> None:
    replay.access_lifetime_s = -1  # the service accepts no token we get (e.g. the account lacks the right)
    cdse = open_source("cdse")
    gate = SourceGate(cdse)
    lake = open_lake(str(tmp_path / "lake"))
    granules = search_granules(cdse, product="no2", start=WINDOW[0], end=WINDOW[1])
    for g in granules:
        with pytest.raises(UpstreamAuthError) as info:
            harvest_granule(g, lake, source="cdse", gate=gate)
        assert "source cdse refused access again after a new token" in str(info.value)
        assert "EOLAKE_CDSE_USERNAME" in str(info.value)
    assert [s for _, s in replay.downloads] == [401, 401]  # the first granule's two tries, nothing after
    assert len(replay.token_grants) == 2


def test_wrong_cdse_credentials_ask_the_token_endpoint_once_and_name_the_settings(
    replay: Replay, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EOLAKE_CDSE_PASSWORD", "wrong")
    get_settings.cache_clear()
    cdse = open_source("cdse")
    gate = SourceGate(cdse)
    granules = search_granules(cdse, product="no2", start=WINDOW[0], end=WINDOW[1])
    lake = open_lake(str(tmp_path / "lake"))
    errors = []
    threads = [
        threading.Thread(
            target=lambda g=g: _capture(errors, harvest_granule, g, lake, source="cdse", gate=gate)
        )
        for g in granules
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(errors) == len(granules) and all(isinstance(e, UpstreamAuthError) for e in errors)
    message = str(errors[0])
    assert "invalid_grant (Invalid user credentials)" in message
    assert "EOLAKE_CDSE_USERNAME and EOLAKE_CDSE_PASSWORD" in message
    assert "wrong" not in message and "\n" not in message
    assert replay.token_grants == ["password"] and replay.downloads == []


def test_cdse_without_credentials_says_which_settings_to_set(
    replay: Replay, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("EOLAKE_CDSE_USERNAME")
    monkeypatch.delenv("EOLAKE_CDSE_PASSWORD")
    get_settings.cache_clear()
    cdse = open_source("cdse")
    g = search_granules(cdse, product="no2", start=WINDOW[0], end=WINDOW[1])[0]
    with pytest.raises(UpstreamAuthError, match="needs a CDSE login to download: set EOLAKE_CDSE_USERNAME"):
        cdse.authorize(g)
    assert replay.token_grants == []


def _capture(errors: list[BaseException], fn, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
    try:
        fn(*args, **kwargs)
    except BaseException as exc:  # collected for the assertions
        errors.append(exc)


# ---- plain listings (how GOSAT and TanSat files arrive) ----


@pytest.fixture
def listing_sources(archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(archive.parent))
    handler.log_message = lambda *a: None  # type: ignore[method-assign]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    path = tmp_path / "sources.yaml"
    path.write_text(
        "sources:\n"
        "  mirror-http:\n"
        "    kind: listing\n"
        f"    url: http://127.0.0.1:{server.server_address[1]}/\n"
        "    max_connections: 2\n"
        "  mirror-dir:\n"
        "    kind: listing\n"
        f"    url: {archive.parent}\n"
    )
    monkeypatch.setenv("EOLAKE_SOURCES_FILE", str(path))
    get_settings.cache_clear()
    try:
        yield str(path)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        get_settings.cache_clear()


def test_directory_listings_over_http_and_on_a_file_system_find_every_granule(
    archive: Path, listing_sources: str
) -> None:
    files = sorted(p.name for p in archive.parent.rglob("*.nc"))
    assert files
    for name in ("mirror-http", "mirror-dir"):
        adapter = open_source(name)
        found = search_granules(adapter, product="no2", start=WINDOW[0], end=WINDOW[1])
        assert sorted(f"{g.granule_id}.nc" for g in found) == files, name
        assert search_granules(adapter, product="co", start=WINDOW[0], end=WINDOW[1]) == []
    later = day_window(dt.date(2021, 1, 1), dt.date(2021, 1, 2))
    assert search_granules(open_source("mirror-http"), product="no2", start=later[0], end=later[1]) == []
    assert open_source("mirror-http").max_connections == 2


def test_an_s3_prefix_listing_finds_every_granule_with_its_size_and_harvests_it(
    archive: Path, s3_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import s3fs

    for k, v in s3_server.env.items():
        monkeypatch.setenv(k, v)
    fs = s3fs.S3FileSystem(endpoint_url=s3_server.env["AWS_ENDPOINT_URL"])
    fs.mkdir("mirror")
    files = sorted(archive.parent.rglob("*.nc"))
    for f in files:
        fs.put(str(f), f"mirror/tansat-like/{f.parent.name}/{f.name}")
    path = tmp_path / "sources.yaml"
    path.write_text(
        "sources:\n  bucket:\n    kind: listing\n    url: s3://mirror/\n    collections: {no2: tansat-like}\n"
    )
    monkeypatch.setenv("EOLAKE_SOURCES_FILE", str(path))
    get_settings.cache_clear()
    try:
        adapter = open_source("bucket")
        found = search_granules(adapter, product="no2", start=WINDOW[0], end=WINDOW[1])
    finally:
        get_settings.cache_clear()
    assert [f"{g.granule_id}.nc" for g in found] == sorted(f.name for f in files)
    assert [g.size for g in found] == [
        next(f for f in files if f.name == f"{g.granule_id}.nc").stat().st_size for g in found
    ]
    assert all(g.href.startswith("s3://mirror/tansat-like/") for g in found)
    row = harvest_granule(
        found[0], open_lake(str(tmp_path / "lake")), source="bucket", gate=SourceGate(adapter)
    )
    assert row["status"] == "harvested" and row["size"] == found[0].size
