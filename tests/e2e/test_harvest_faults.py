"""Harvest against a faulty upstream: 5xx, 429 with Retry-After, connections cut mid-body (resumed with range
requests) and slow answers are retried until the bytes arrive intact; a scrambled file is quarantined (its bytes
discarded); refused credentials stop the source with a message naming the credential, without retries. Nothing
is lost or duplicated."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from tests.fakes.upstream import serve_upstream

PERIOD = ["--start", "2020-03-02", "--end", "2020-03-02"]


def test_transient_faults_are_retried_and_corruption_quarantined(cli, tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    cli("simulate", "--out", str(archive), "--bbox", "4,47,12,53", *PERIOD)
    names = sorted(p.name for p in archive.rglob("*.nc"))
    assert len(names) >= 2
    faults = {
        names[0]: ["503", "429:1", "cut", "cut@1000", "slow:1"],
        names[1]: ["500", "cut", "corrupt", "corrupt", "corrupt", "corrupt", "corrupt"],
    }
    lake = tmp_path / "lake"
    with serve_upstream(archive / "catalog.json", faults=faults) as api:
        out = cli("harvest", "--source", api, "--product", "no2", *PERIOD, "--lake", str(lake)).stdout
    ledger = pd.read_parquet(lake / "ledger" / "granules.parquet").set_index("granule_id")
    first, second = (n.removesuffix(".nc") for n in names[:2])
    assert ledger.loc[first, "status"] == "harvested"
    assert next((lake / "raw").rglob(names[0])).read_bytes() == next(archive.rglob(names[0])).read_bytes()
    assert (
        ledger.loc[second, "status"] == "quarantined" and "checksum mismatch" in ledger.loc[second, "reason"]
    )
    assert pd.isna(ledger.loc[second, "key"])  # bytes that fail the checksum are not kept
    assert f"quarantined {second}" in out
    assert len(ledger) == len(names) and ledger.index.is_unique
    assert not list((lake / "raw").rglob(names[1])) and not list((lake / "raw" / ".partial").glob("*"))


def test_refused_credentials_stop_the_source_without_retries(cli, tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    cli("simulate", "--out", str(archive), "--bbox", "4,47,12,53", *PERIOD)
    names = sorted(p.name for p in archive.rglob("*.nc"))
    lake = tmp_path / "lake"
    # one refusal only: had the harvest retried, the second attempt would have succeeded
    with serve_upstream(archive / "catalog.json", faults={names[0]: ["401"]}) as api:
        proc = cli("harvest", "--source", api, "--product", "no2", *PERIOD, "--lake", str(lake), check=False)
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert (
        last.startswith("eolake: error:") and "HTTP 401" in last and "check the source's credentials" in last
    )
    assert not (lake / "ledger" / "granules.parquet").exists()  # nothing half-recorded
