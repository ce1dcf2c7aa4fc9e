"""Fixtures shared by the STAC API tests (test_stac_api, test_stac_api_fuzz): one demo lake, one throwaway
PostgreSQL with pgstac, and the two API servers, built once per session and stopped by PID."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.postgres import start_postgres, stop_postgres
from infra.services import Service, _wait, free_port, group_members
from tests.conftest import REPO, Cli

GRANULES = "s5p-l2-no2"


@pytest.fixture(scope="session")
def stac_lake(cli_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("stac-lake")
    cli = Cli(dict(cli_env), work)
    cli("demo", "--lake", str(work / "lake"), "--start", "2020-03-02", "--end", "2020-03-03")
    return work / "lake"


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    service = start_postgres(tmp_path_factory.mktemp("pg"))
    yield service
    stop_postgres(service)
    assert service.process.poll() is not None and group_members(service.process.pid) == []


def _serve(lake: Path, env: dict[str, str], log: Path, *extra: str) -> Service:
    port = free_port()
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "flows.cli", "stac", "serve", "--lake", str(lake), "--host", "127.0.0.1",
             "--port", str(port), *extra],
            env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        with urllib.request.urlopen(url + "/_mgmt/ping", timeout=2) as r:
            return bool(r.status == 200)

    _wait(healthy, what="STAC API", process=proc, log=log, timeout=60)
    return Service("stac-api", proc, url, log)


@pytest.fixture(scope="session")
def apis(
    stac_lake: Path, postgres: Service, cli_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    env = {**cli_env, **postgres.env}
    logs = tmp_path_factory.mktemp("stac-logs")
    loaded = Cli(env, logs)("stac", "load-pgstac", "--lake", str(stac_lake))
    counts = json.loads(loaded.stdout)["items"]
    assert counts[GRANULES] >= 2
    # upserts: loading again changes nothing
    assert (
        json.loads(Cli(env, logs)("stac", "load-pgstac", "--lake", str(stac_lake)).stdout)["items"] == counts
    )
    embedded = _serve(stac_lake, dict(cli_env), logs / "embedded.log")
    pg = _serve(stac_lake, env, logs / "pgstac.log", "--backend", "pgstac")
    yield {"embedded": embedded.url, "pgstac": pg.url}
    for s in (embedded, pg):
        s.stop()
        assert s.process.poll() is not None
