"""Catalog maintenance: extents recomputed from items, and pgstac brought up to date with the lake (upserts,
idempotent), against a real throwaway PostgreSQL + PostGIS + pgstac on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from infra.maintenance import refresh_collections, sync_pgstac
from infra.postgres import start_postgres, stop_postgres
from infra.services import group_members
from infra.storage import open_lake


@pytest.fixture(scope="module")
def demo_lake(tmp_path_factory: pytest.TempPathFactory, cli_env: dict[str, str]) -> Path:
    from tests.conftest import Cli

    root = tmp_path_factory.mktemp("maint")
    Cli(dict(cli_env), root)(
        "demo",
        "--lake",
        str(root / "lake"),
        "--start",
        "2020-03-02",
        "--end",
        "2020-03-02",
        "--bbox",
        "4,47,12,53",
        "--resolution",
        "0.25",
    )
    return root / "lake"


def test_refresh_and_pgstac_sync(demo_lake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lake = open_lake(str(demo_lake), create=False)
    assert set(refresh_collections(lake)) >= {"s5p-l2-no2", "eolake-emissions-daily"}
    pg = start_postgres(tmp_path / "pg")
    try:
        for k, v in pg.env.items():
            if k.startswith("PG"):
                monkeypatch.setenv(k, v)
        first = sync_pgstac(lake)
        again = sync_pgstac(lake)  # upserts: nothing duplicated
        assert first == again and first["s5p-l2-no2"] >= 1
        with psycopg.connect("") as conn:
            rows = dict(
                conn.execute("SELECT collection, count(*) FROM pgstac.items GROUP BY collection").fetchall()
            )
        assert rows == {k: v for k, v in first.items() if v}
    finally:
        stop_postgres(pg)
    assert pg.process.poll() is not None and group_members(pg.process.pid) == []
