"""The NASA CMR-STAC adapter against a replay of CMR-STAC and GES DISC with Earthdata Login (tests/fakes/cmr.py):
versioned collections found by listing, paged search, product matching on file names, bearer token and
~/.netrc downloads, clear errors without a credential or with a refused one; and a harvest through the CLI by
the configured source name."""

from __future__ import annotations

import datetime as dt
import io
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from infra.adapters.base import day_window
from infra.adapters.cmr import CmrStacAdapter, version_of
from infra.adapters.registry import open_source
from infra.archive import simulate_day
from infra.http import UpstreamAuthError, download
from infra.scenario import load_truth
from infra.settings import get_settings
from tests.fakes.cmr import CmrReplay, serve_cmr

BBOX = (-5.0, 42.0, 20.0, 56.0)
DAYS = (dt.date(2020, 3, 2), dt.date(2020, 3, 3))


@pytest.fixture(scope="module")
def lite_files(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Path, str]]:
    out = tmp_path_factory.mktemp("cmr-archive")
    truth = load_truth(None, start=DAYS[0], end=DAYS[1], bounds=BBOX)
    files = []
    for product, collection in (
        ("oco2-xco2", "OCO2_L2_Lite_FP_11.2r"),
        ("oco3-xco2", "OCO3_L2_Lite_FP_10.4r"),
    ):
        for day in DAYS if product == "oco2-xco2" else DAYS[:1]:
            rows = truth[pd.to_datetime(truth["date"]).dt.date == day]
            (item,) = simulate_day(str(out), day, rows, bounds=BBOX, product=product)
            files.append((Path(item["assets"][product]["href"]), collection))
    v11 = files[0][0]  # the same day in an older build, in the older collection
    v10 = v11.with_name(
        v11.name.replace("_B11014Ar_", "_B10206Ar_").replace(v11.name[-17:-5], "200601000000")
    )
    shutil.copyfile(v11, v10)
    files.append((v10, "OCO2_L2_Lite_FP_10r"))
    return files


@pytest.fixture
def replay(
    lite_files: list[tuple[Path, str]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[CmrReplay]:
    with serve_cmr(lite_files) as r:
        monkeypatch.setenv(
            "EOLAKE_SOURCE_URLS", json.dumps({"nasa-cmr": r.stac_url, "nasa-cmr.token_url": r.url})
        )
        monkeypatch.delenv("EOLAKE_EARTHDATA_TOKEN", raising=False)
        monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))  # no ~/.netrc unless a test writes one
        get_settings.cache_clear()
        yield r
    get_settings.cache_clear()


def test_version_of_collection_ids() -> None:
    assert version_of("OCO2_L2_Lite_FP_11.2r", "OCO2_L2_Lite_FP") == (11, 2)
    assert version_of("OCO2_L2_Lite_FP.10r", "OCO2_L2_Lite_FP") == (10,)
    assert version_of("OCO2_L2_Standard_11.2r", "OCO2_L2_Lite_FP") is None


def test_search_lists_versioned_collections_and_pages(replay: CmrReplay) -> None:
    adapter = open_source("nasa-cmr")
    assert isinstance(adapter, CmrStacAdapter) and adapter.max_connections == 4
    assert adapter.collections("oco2-xco2", None) == ["OCO2_L2_Lite_FP_10r", "OCO2_L2_Lite_FP_11.2r"]
    found = sorted(g.granule_id for g in adapter.search("oco2-xco2", *day_window(*DAYS)))
    assert len(found) == 3 and all(g.startswith("oco2_LtCO2_") for g in found)  # no OCO-3 file
    assert replay.pages > replay.searches  # one item a page: next links followed
    (day1,) = [
        g for g in adapter.search("oco2-xco2", *day_window(DAYS[0], DAYS[0])) if "B11014A" in g.granule_id
    ]
    assert day1.name.product == "oco2-xco2" and day1.href.startswith(
        replay.url + "/data/OCO2_L2_Lite_FP.11.2r/2020/"
    )
    (oco3,) = adapter.search("oco3-xco2", *day_window(*DAYS))
    assert oco3.name.product == "oco3-xco2"


def test_bearer_token_download(replay: CmrReplay, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EOLAKE_EARTHDATA_TOKEN", replay.token)
    get_settings.cache_clear()
    adapter = open_source("nasa-cmr")
    g = next(iter(adapter.search("oco2-xco2", *day_window(DAYS[0], DAYS[0]))))
    d = adapter.authorize(g)
    assert d.headers == {"Authorization": f"Bearer {replay.token}"} and replay.token not in repr(d)
    sink = _Sink()
    download(d.href, sink, headers=dict(d.headers))
    assert sink.data == Path(next(p for p, _ in replay.files if p.name == g.name.filename)).read_bytes()
    assert replay.downloads["bearer"] == 1
    with pytest.raises(UpstreamAuthError, match="renew EOLAKE_EARTHDATA_TOKEN"):
        adapter.authorize(g, refresh=True)


def test_wrong_token_is_refused_once_with_the_setting_named(
    replay: CmrReplay, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EOLAKE_EARTHDATA_TOKEN", "expired")
    get_settings.cache_clear()
    adapter = open_source("nasa-cmr")
    g = next(iter(adapter.search("oco2-xco2", *day_window(DAYS[0], DAYS[0]))))
    d = adapter.authorize(g)
    with pytest.raises(UpstreamAuthError, match="EOLAKE_EARTHDATA_TOKEN") as info:
        download(d.href, _Sink(), headers=dict(d.headers), credential_hint=adapter.credential_hint)
    assert "expired" not in str(info.value) and replay.refused == 1


def test_netrc_login_follows_the_earthdata_redirect(
    replay: CmrReplay, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine 127.0.0.1 login {replay.user} password {replay.password}\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    adapter = open_source("nasa-cmr")
    g = next(iter(adapter.search("oco2-xco2", *day_window(DAYS[1], DAYS[1]))))
    d = adapter.authorize(g)
    assert d.headers == {}
    sink = _Sink()
    download(d.href, sink, headers=dict(d.headers))
    assert sink.data[:8] == b"\x89HDF\r\n\x1a\n" and replay.downloads["cookie"] == 1 and replay.sessions


def test_no_credential_names_both_ways(replay: CmrReplay) -> None:
    adapter = open_source("nasa-cmr")
    g = next(iter(adapter.search("oco2-xco2", *day_window(DAYS[0], DAYS[0]))))
    with pytest.raises(UpstreamAuthError, match=r"EOLAKE_EARTHDATA_TOKEN.*\.netrc"):
        adapter.authorize(g)


def test_harvest_by_source_name_keeps_the_newer_build(
    cli, replay: CmrReplay, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake = tmp_path / "lake"
    cli.env.update(
        {
            "EOLAKE_SOURCE_URLS": json.dumps({"nasa-cmr": replay.stac_url, "nasa-cmr.token_url": replay.url}),
            "EOLAKE_EARTHDATA_TOKEN": replay.token,
        }
    )
    period = ["--start", str(DAYS[0]), "--end", str(DAYS[1])]
    out = cli(
        "harvest", "--source", "nasa-cmr", "--product", "oco2-xco2", *period, "--lake", str(lake)
    ).stdout
    assert replay.token not in out
    ledger = pd.read_parquet(lake / "ledger" / "granules.parquet").set_index("granule_id")
    assert len(ledger) == 3 and ledger.index.is_unique
    status = {gid[18:25]: s for gid, s in ledger["status"].items() if gid.startswith("oco2_LtCO2_200302")}
    assert status == {"B11014A": "harvested", "B10206A": "superseded"}
    assert (ledger["status"] == "harvested").sum() == 2 and replay.downloads["bearer"] == 3
    for path in lake.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".parquet", ".yaml"):
            assert replay.token.encode() not in path.read_bytes()


class _Sink:
    def __init__(self) -> None:
        self.buffer = io.BytesIO()

    def write(self, data: bytes, /) -> object:
        return self.buffer.write(data)

    def restart(self) -> None:
        self.buffer = io.BytesIO()

    @property
    def data(self) -> bytes:
        return self.buffer.getvalue()
