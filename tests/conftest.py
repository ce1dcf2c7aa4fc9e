"""Session-wide real services for the tests: a Prefect server and an S3 server (rclone), both on 127.0.0.1,
both stopped by their PID when the session ends. CLI runs go through a real subprocess, as a user's would."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from infra.services import Service, start_prefect_server, start_s3_server

REPO = Path(__file__).resolve().parents[1]


def pytest_configure(config: pytest.Config) -> None:
    """Bytecode for every Python process of the session (this one, the ``eolake`` subprocesses, the servers and
    dask workers it starts) is cached under ``.pytest_cache/pycache`` (or an existing ``PYTHONPYCACHEPREFIX``),
    as an installed package's would be: with ``PYTHONDONTWRITEBYTECODE`` set (as on these machines) each of the
    suite's ~200 process starts compiled its ~900 modules from source, ~1 s of CPU each."""
    prefix = os.environ.get("PYTHONPYCACHEPREFIX") or str(REPO / ".pytest_cache" / "pycache")
    os.environ["PYTHONPYCACHEPREFIX"] = prefix
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    sys.pycache_prefix = prefix
    sys.dont_write_bytecode = False


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    server = start_prefect_server(tmp_path_factory.mktemp("prefect-home"))
    yield server
    server.stop()
    assert server.process.poll() is not None


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    server = start_s3_server(
        tmp_path_factory.mktemp("s3-data") / "data",
        key="eolake" + secrets.token_hex(6),
        secret=secrets.token_hex(16),
    )
    yield server
    server.stop()
    assert server.process.poll() is not None


@dataclass
class Cli:
    env: dict[str, str]
    cwd: Path

    def __call__(
        self, *args: str, check: bool = True, timeout: float = 600
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [sys.executable, "-m", "flows.cli", *args],
            env=self.env,
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"eolake {' '.join(args)} exited {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
            )
        return proc


def _base_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "EOLAKE_", "PREFECT_"))}
    env.update(
        PYTHONPATH=str(REPO),
        PREFECT_HOME=str(home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        EOLAKE_DASK_WORKERS="1",
        EOLAKE_DASK_THREADS_PER_WORKER="2",
    )
    return env


@pytest.fixture(scope="session")
def cli_env(prefect_server: Service, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    env = _base_env(tmp_path_factory.mktemp("cli-home"))
    env.update(prefect_server.env)
    return env


@pytest.fixture
def cli(cli_env: dict[str, str], tmp_path: Path) -> Cli:
    """Runs ``eolake`` in a subprocess against the session's Prefect server, in a fresh working directory."""
    return Cli(dict(cli_env), tmp_path)


@pytest.fixture
def offline_cli(tmp_path: Path) -> Cli:
    """Runs ``eolake`` with no Prefect server configured (for argument errors, which never reach Prefect)."""
    env = _base_env(tmp_path / "home")
    env["PREFECT_API_URL"] = (
        "http://127.0.0.1:9/api"  # nothing listens there: a run that reached Prefect fails
    )
    return Cli(env, tmp_path)


def latest_artifact(api: str, key: str) -> str:
    """The newest Prefect artifact with ``key`` on the server at ``api`` (over its REST API)."""
    import json
    import urllib.request

    body = json.dumps({"artifacts": {"key": {"any_": [key]}}, "sort": "CREATED_DESC", "limit": 1}).encode()
    req = urllib.request.Request(
        f"{api}/artifacts/filter", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        found = json.loads(r.read())
    assert found, f"no artifact {key!r} on {api}"
    return str(found[0]["data"])


def artifacts(api: str, key: str, *, limit: int = 200) -> list[str]:
    """The data of every Prefect artifact with ``key`` on the server at ``api``, newest first."""
    import json
    import urllib.request

    body = json.dumps(
        {"artifacts": {"key": {"any_": [key]}}, "sort": "CREATED_DESC", "limit": limit}
    ).encode()
    req = urllib.request.Request(
        f"{api}/artifacts/filter", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        return [str(a["data"]) for a in json.loads(r.read())]
