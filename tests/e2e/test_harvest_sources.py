"""``eolake harvest --source <configured name>`` against replayed services: the committed sources file, its URLs
pointed at the replay by EOLAKE_SOURCE_URLS; per-source connection limits; refused credentials; one source down
among several; incremental runs from the high-water mark, which a failed run does not advance."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from infra.adapters import load_sources
from infra.adapters.registry import REPO_SOURCES_FILE
from infra.ledger import read_marks, record_mark
from infra.storage import open_lake
from tests.conftest import Cli
from tests.fakes.services import Replay, serve_services, simulated_catalog

PERIOD = ["--start", "2020-03-02", "--end", "2020-03-04"]


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return simulated_catalog(
        tmp_path_factory.mktemp("archive"), "2020-03-02", "2020-03-04", (-5.0, 42.0, 20.0, 56.0)
    )


@pytest.fixture
def replay(archive: Path) -> Iterator[Replay]:
    with serve_services(archive) as r:
        yield r


def _env(cli: Cli, replay: Replay, **extra: str) -> Cli:
    env = {
        "EOLAKE_SOURCE_URLS": json.dumps(replay.source_urls()),
        "EOLAKE_CDSE_USERNAME": replay.username,
        "EOLAKE_CDSE_PASSWORD": replay.password,
    }
    cli.env.update(env | extra)
    return cli


def _secrets_in(lake: Path, replay: Replay) -> list[str]:
    issued = [*replay._sas, *replay._access, *replay._refresh, replay.password]
    blobs = [p.read_bytes() for p in lake.rglob("*") if p.is_file()]
    return [s for s in issued if any(s.encode() in b for b in blobs)]


def test_harvest_by_configured_name_from_planetary_computer_and_cdse(
    cli: Cli, replay: Replay, tmp_path: Path
) -> None:
    cli = _env(cli, replay)
    n = len(replay.granules)
    assert n > 4  # more granules than CDSE's 4 connections
    replay.download_delay_s = 0.3  # downloads overlap, so the connection limit is exercised
    for source, limit in (
        ("planetary-computer", 8),
        ("cdse", 4),
    ):  # max_connections in deployments/sources.yaml
        replay.peak_downloads = 0
        lake = tmp_path / source
        out = cli("harvest", "--source", source, "--product", "no2", *PERIOD, "--lake", str(lake)).stdout
        assert f"harvest from {source}: {n} granules upstream, {n} fetched" in out
        ledger = pd.read_parquet(lake / "ledger" / "granules.parquet")
        assert sorted(ledger["granule_id"]) == sorted(g.id for g in replay.granules)
        assert (ledger["source"] == source).all() and (ledger["status"] == "harvested").all()
        assert not ledger["source_href"].str.contains("sig=|\\?", regex=True).any()
        for g in replay.granules:
            assert next((lake / "raw").rglob(f"{g.id}.nc")).read_bytes() == g.path.read_bytes()
        assert _secrets_in(lake, replay) == []  # SAS signatures, bearer tokens, the password
        assert 1 <= replay.peak_downloads <= limit, source
    assert replay.token_grants == ["password"]  # one login for all of CDSE's downloads
    assert replay.sas_requests == ["sentinel-5p-l2-netcdf"]  # one SAS token for all of PC's


def test_a_source_with_fewer_connections_never_gets_more(cli: Cli, replay: Replay, tmp_path: Path) -> None:
    sources = tmp_path / "sources.yaml"
    sources.write_text(
        "sources:\n"
        "  pc-narrow:\n"
        "    kind: planetary-computer\n"
        f"    url: {replay.pc_url}\n"
        "    auth: sas\n"
        f"    token_url: {replay.pc_token_url}\n"
        "    max_connections: 2\n"
        "    collections: {no2: sentinel-5p-l2-netcdf}\n"
    )
    cli.env["EOLAKE_SOURCES_FILE"] = str(sources)
    replay.download_delay_s = 0.5
    out = cli(
        "harvest", "--source", "pc-narrow", "--product", "no2", *PERIOD, "--lake", str(tmp_path / "l")
    ).stdout
    assert f"{len(replay.granules)} fetched" in out
    assert replay.peak_downloads == 2  # the limit, reached (downloads take 0.5 s; many wait their turn)


def test_two_runs_at_once_share_the_source_connections(cli: Cli, replay: Replay, tmp_path: Path) -> None:
    sources = tmp_path / "sources.yaml"
    sources.write_text(
        "sources:\n"
        "  pc-shared:\n"
        "    kind: planetary-computer\n"
        f"    url: {replay.pc_url}\n"
        "    auth: sas\n"
        f"    token_url: {replay.pc_token_url}\n"
        "    max_connections: 2\n"
    )
    cli.env["EOLAKE_SOURCES_FILE"] = str(sources)
    replay.download_delay_s = 1.0
    runs = [
        ["harvest", "--source", "pc-shared", *PERIOD, "--lake", str(tmp_path / f"lake{i}")] for i in (1, 2)
    ]
    outs: list[str] = []
    threads = [threading.Thread(target=lambda a=a: outs.append(cli(*a).stdout)) for a in runs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(outs) == 2 and all(f"{len(replay.granules)} fetched" in o for o in outs)
    assert replay.peak_downloads <= 2  # one limit for both runs (each alone would allow 2)


def test_unknown_source_names_the_configured_ones(offline_cli: Cli, tmp_path: Path) -> None:
    proc = offline_cli(
        "harvest", "--source", "copernicus", *PERIOD, "--lake", str(tmp_path / "l"), check=False
    )
    assert proc.returncode == 2
    names = ", ".join(sorted(load_sources(REPO_SOURCES_FILE)))
    assert proc.stderr.strip() == (
        f"eolake: error: unknown source 'copernicus': choose one of {names} or give a STAC catalog/API URL or path"
    )
    assert not (tmp_path / "l").exists()


def test_wrong_cdse_password_fails_once_and_names_the_settings(
    cli: Cli, replay: Replay, tmp_path: Path
) -> None:
    cli = _env(cli, replay, EOLAKE_CDSE_PASSWORD="not-the-password")
    lake = tmp_path / "lake"
    proc = cli("harvest", "--source", "cdse", "--product", "no2", *PERIOD, "--lake", str(lake), check=False)
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("eolake: error:") and "Invalid user credentials" in last
    assert "check EOLAKE_CDSE_USERNAME and EOLAKE_CDSE_PASSWORD" in last
    assert "not-the-password" not in proc.stderr + proc.stdout
    assert replay.token_grants == ["password"] and replay.downloads == []  # asked once, no retry storm
    assert not (lake / "ledger" / "granules.parquet").exists()


def test_one_source_down_does_not_stop_the_others(cli: Cli, replay: Replay, tmp_path: Path) -> None:
    cli = _env(cli, replay)
    urls = dict(replay.source_urls(), cdse="http://127.0.0.1:9/stac/v1/")  # nothing listens there
    cli.env["EOLAKE_SOURCE_URLS"] = json.dumps(urls)
    lake = tmp_path / "lake"
    proc = cli(
        "harvest",
        "--source",
        "cdse,planetary-computer",
        "--product",
        "no2",
        *PERIOD,
        "--lake",
        str(lake),
        check=False,
    )
    assert proc.returncode == 1, proc.stderr
    assert "source cdse failed: STAC API search at http://127.0.0.1:9/stac/v1/ (cdse) failed" in proc.stdout
    assert f"{len(replay.granules)} fetched" in proc.stdout
    ledger = pd.read_parquet(lake / "ledger" / "granules.parquet")
    assert len(ledger) == len(replay.granules) and (ledger["source"] == "planetary-computer").all()


def test_incremental_runs_search_from_the_high_water_mark_and_a_failed_run_keeps_it(
    cli: Cli, replay: Replay, tmp_path: Path
) -> None:
    cli = _env(cli, replay)
    lake = tmp_path / "lake"
    mark = dt.datetime(2020, 3, 4, tzinfo=dt.UTC)  # as if the last successful run ended there
    record_mark(open_lake(str(lake)), "planetary-computer", "no2", mark, mark)
    late = [g for g in replay.granules if g.end > "2020-03-03T00:00:00Z"]  # what [mark - 1 day, now) overlaps
    assert 1 < len(late) < len(replay.granules)
    replay.fail_downloads = {late[0].id}
    harvest = ["harvest", "--source", "planetary-computer", "--product", "no2", "--days-back", "1"]

    plan = cli(*harvest, "--plan", "--lake", str(lake)).stdout
    assert "incremental window for planetary-computer: 2020-03-03T00:00:00+00:00 to " in plan
    assert "nothing was written" in plan
    assert not (lake / "ledger" / "granules.parquet").exists()

    out = cli(*harvest, "--lake", str(lake)).stdout  # one download fails: the run does not count
    assert f"{len(late) - 1} fetched" in out and f"quarantined {late[0].id}" in out
    assert replay.searches[-1]["datetime"].startswith("2020-03-02T00:00:00")  # mark - 1 day - search margin
    assert read_marks(open_lake(str(lake)))["mark"].tolist() == [pd.Timestamp(mark)]

    replay.fail_downloads = set()
    out = cli(*harvest, "--lake", str(lake)).stdout  # same window again; the failed granule comes now
    assert "1 fetched" in out
    marks = read_marks(open_lake(str(lake)))
    assert marks["mark"].iloc[0] > pd.Timestamp.now(tz="UTC") - pd.Timedelta(minutes=10)  # advanced to now

    out = cli(*harvest, "--lake", str(lake)).stdout  # from the new mark: the 2020 granules are out of range
    assert "0 granules upstream" in out
    searched_from = replay.searches[-1]["datetime"].split("/")[0]
    assert searched_from >= (dt.datetime.now(dt.UTC).date() - dt.timedelta(days=3)).isoformat()
