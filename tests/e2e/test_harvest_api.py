"""Harvest from a STAC API (pystac-client, paged search) with the granules downloaded over HTTP."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pystac

from tests.conftest import artifacts, latest_artifact
from tests.fakes.upstream import SIGNATURE, serve_upstream


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
    report = latest_artifact(cli.env["PREFECT_API_URL"], "eolake-harvest-no2")
    assert f"| {len(upstream)} | 0 | {len(upstream)} | 0 | 0 |" in report  # the re-run's report
    links = artifacts(cli.env["PREFECT_API_URL"], "eolake-harvest-no2-items")  # other tests' harvests too
    ours = [
        a for a in links if f"]({lake}/stac/s5p-l2-no2/items/S5P_OFFL_L2__NO2____" in a
    ]  # markdown [text](url)
    assert len(ours) == len(upstream)  # one link per granule item the first run wrote
    leaks = [p for p in lake.rglob("*") if p.is_file() and SIGNATURE.encode() in p.read_bytes()]
    assert leaks == []  # signed-URL tokens reach neither the ledger nor the catalog
    items = list(pystac.Catalog.from_file(str(lake / "stac" / "catalog.json")).get_items(recursive=True))
    granule_items = [i for i in items if i.collection_id == "s5p-l2-no2"]
    assert len(granule_items) == len(upstream)
    for item in granule_items:
        (link,) = item.get_links("derived_from")
        assert link.href.startswith("http://127.0.0.1:") and link.href.endswith(f"/files/{item.id}.nc")
    ledger = pd.read_parquet(lake / "ledger" / "granules.parquet")
    assert sorted(ledger["granule_id"] + ".nc") == upstream
    assert ledger["source_href"].str.startswith("http://127.0.0.1:").all()
    for name in upstream:
        assert next((lake / "raw").rglob(name)).read_bytes() == next(archive.rglob(name)).read_bytes()
