"""Harvest from a STAC API (pystac-client, paged search) with the granules downloaded over HTTP."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from tests.fakes.upstream import serve_upstream


def test_harvest_from_a_stac_api_over_http(cli, tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    cli(
        "simulate",
        "--out",
        str(archive),
        "--bbox",
        "4,47,12,53",
        "--start",
        "2020-03-02",
        "--end",
        "2020-03-03",
    )
    upstream = sorted(p.name for p in archive.rglob("*.nc"))
    assert len(upstream) >= 3
    lake = tmp_path / "lake"
    with serve_upstream(archive / "catalog.json") as api:
        out = cli(
            "harvest",
            "--source",
            api,
            "--product",
            "no2",
            "--start",
            "2020-03-02",
            "--end",
            "2020-03-03",
            "--lake",
            str(lake),
        ).stdout
        assert f"{len(upstream)} fetched" in out
        again = cli(
            "harvest",
            "--source",
            api,
            "--product",
            "no2",
            "--start",
            "2020-03-02",
            "--end",
            "2020-03-03",
            "--lake",
            str(lake),
        ).stdout
        assert "0 fetched" in again
    ledger = pd.read_parquet(lake / "ledger" / "granules.parquet")
    assert sorted(ledger["granule_id"] + ".nc") == upstream
    assert ledger["source_href"].str.startswith("http://127.0.0.1:").all()
    for name in upstream:
        assert next((lake / "raw").rglob(name)).read_bytes() == next(archive.rglob(name)).read_bytes()
