"""A granule upstream published corrupt, with a checksum that matches the corrupt bytes: the harvest keeps it
(its structure is intact and only the structure is checked), `eolake grid` cannot decode it, quarantines it
(ledger, bytes to quarantine/, its raw STAC item dropped), grids the day from the rest and names it; the next
harvest fetches it again (the retry budget) and, once upstream republished good bytes, the day is re-gridded
with it. Nothing is lost."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pandas as pd

from infra.archive import simulate_day, write_archive_catalog
from infra.scenario import load_truth
from tests.conftest import latest_artifact
from tests.fakes.damage import publish, scramble_chunk
from tests.fakes.upstream import serve_upstream

DAY, BBOX = dt.date(2020, 3, 2), (4.0, 47.0, 12.0, 53.0)
PERIOD = ["--start", "2020-03-02", "--end", "2020-03-02"]
GRID = [*PERIOD, "--bbox", "4,47,12,53", "--resolution", "0.5"]


def test_a_granule_unreadable_at_grid_time_is_quarantined_and_fetched_again(cli, tmp_path: Path) -> None:
    archive, lake = tmp_path / "archive", tmp_path / "lake"
    truth = load_truth(None, start=DAY, end=DAY, bounds=BBOX)
    write_archive_catalog(str(archive), simulate_day(str(archive), DAY, truth, bounds=BBOX))
    names = sorted(p.name for p in archive.rglob("*.nc"))
    assert len(names) >= 2
    bad = names[0]
    good_copy = tmp_path / bad
    shutil.copy(next(archive.rglob(bad)), good_copy)
    scramble_chunk(next(archive.rglob(bad)), "PRODUCT/nitrogendioxide_tropospheric_column")
    publish(archive, bad)
    gid = bad.removesuffix(".nc")
    harvest = ["harvest", "--product", "no2", *PERIOD, "--lake", str(lake)]
    with serve_upstream(archive / "catalog.json") as api:
        out = cli(*harvest[:1], "--source", api, *harvest[1:]).stdout
        assert f"{len(names)} fetched" in out and "0 quarantined" in out, out
        ledger = pd.read_parquet(lake / "ledger" / "granules.parquet").set_index("granule_id")
        assert ledger.loc[gid, "status"] == "harvested" and int(ledger.loc[gid, "attempts"]) == 1

        out = cli("grid", "--product", "no2", *GRID, "--lake", str(lake)).stdout
        assert f"quarantined {gid}: unreadable at grid time: " in out, out
        line = next(x for x in out.splitlines() if f"quarantined {gid}" in x)
        assert bad in line and str(lake) not in line  # the reason names the file, not where the lake keeps it
        report = latest_artifact(cli.env["PREFECT_API_URL"], "eolake-grid-no2")
        assert "## Quarantined" in report and f"| `{gid}` | unreadable at grid time: " in report
        assert f"2020-03-02: {len(names) - 1} granules" in out, out
        ledger = pd.read_parquet(lake / "ledger" / "granules.parquet").set_index("granule_id")
        row = ledger.loc[gid]
        assert row["status"] == "quarantined" and row["reason"].startswith("unreadable at grid time: ")
        assert row["key"] == f"quarantine/{bad}"
        assert (lake / "quarantine" / bad).read_bytes() == next(archive.rglob(bad)).read_bytes()
        assert not list((lake / "raw").rglob(bad))
        assert not list((lake / "stac").rglob(f"{gid}.json"))  # no item pointing at bytes that left raw/
        days = pd.read_parquet(lake / "ledger" / "cube_days.parquet")
        assert sorted(days.iloc[0]["granules"]) == [n.removesuffix(".nc") for n in names[1:]]

    # upstream republishes good bytes: the next harvest fetches the quarantined granule again
    shutil.copy(good_copy, next(archive.rglob(bad)))
    publish(archive, bad)
    with serve_upstream(archive / "catalog.json") as api:  # the fake reads its catalog when it starts
        out = cli(*harvest[:1], "--source", api, *harvest[1:]).stdout
    assert "1 fetched" in out and "0 quarantined" in out, out
    ledger = pd.read_parquet(lake / "ledger" / "granules.parquet").set_index("granule_id")
    assert ledger.loc[gid, "status"] == "harvested" and int(ledger.loc[gid, "attempts"]) == 2
    assert next((lake / "raw").rglob(bad)).read_bytes() == good_copy.read_bytes()
    out = cli("grid", "--product", "no2", *GRID, "--lake", str(lake)).stdout
    assert f"2020-03-02: {len(names)} granules" in out and "quarantined" not in out, out
    assert len(ledger) == len(names) and ledger.index.is_unique
