"""The Dask Gateway backend against a real ``dask-gateway-server`` on 127.0.0.1 (its local backend starts the
schedulers and workers as processes; password auth): ``dask_client()`` gets a cluster with the settings'
options and scaling, runs a zonal sum from transforms there, shuts the cluster down on exit, says which
setting to fix when the gateway refuses, and never shows the password; ``eolake demo`` derives its emissions
table there."""

from __future__ import annotations

import base64
import json
import logging
import os
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
from pydantic import SecretStr

from infra.compute import ComputeError, dask_client
from infra.services import _bin, free_port, group_members, stop_group
from infra.settings import Settings
from tests.conftest import Cli
from transforms.grid import GridSpec
from transforms.regions import country_mask
from transforms.zonal import zonal_sums

PASSWORD = "gw-pass-7f3a9c1e5b"  # the shared password of the gateway's SimpleAuthenticator


@dataclass
class Gateway:
    process: subprocess.Popen[bytes]
    address: str
    proxy_address: str
    log: Path
    children: set[int]  # every process the server started (proxy, schedulers, workers), seen while running

    def settings(self, **kw: object) -> Settings:
        base: dict[str, object] = {
            "dask_gateway_address": self.address,
            "dask_gateway_proxy_address": self.proxy_address,
            "dask_gateway_user": "eolake",
            "dask_gateway_token": SecretStr(PASSWORD),
        }
        return Settings(**{**base, **kw})  # type: ignore[arg-type]

    def note_children(self) -> None:
        self.children |= _children(self.process.pid)


def _children(pid: int) -> set[int]:
    """Every live descendant of ``pid`` (the gateway's schedulers and workers run in sessions of their own)."""
    parent: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().split(")")[-1].split()
            except OSError:
                continue
            if fields[0] != "Z":
                parent[int(entry)] = int(fields[1])
    out: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {p for p, pp in parent.items() if pp in frontier} - out
        out |= frontier
    return out


def _config(tmp: Path, api: int, http: int, tcp: int) -> Path:
    dask = _bin("dask")
    path = tmp / "dask_gateway_config.py"
    path.write_text(
        f"""
from dask_gateway_server.options import Float, Integer, Options

c.DaskGateway.address = "127.0.0.1:{api}"
c.Proxy.address = "127.0.0.1:{http}"
c.Proxy.tcp_address = "127.0.0.1:{tcp}"
c.DaskGateway.backend_class = "dask_gateway_server.backends.local.UnsafeLocalBackend"
c.DaskGateway.authenticator_class = "dask_gateway_server.auth.SimpleAuthenticator"
c.SimpleAuthenticator.password = {PASSWORD!r}
c.LocalBackend.clusters_directory = {str(tmp / "clusters")!r}
c.ClusterConfig.scheduler_cmd = [{dask!r}, "scheduler"]
c.ClusterConfig.worker_cmd = [{dask!r}, "worker"]
c.ClusterConfig.idle_timeout = 600


def _options(options):
    return {{"worker_threads": options.worker_cores, "worker_memory": int(options.worker_memory * 2**30)}}


c.Backend.cluster_options = Options(
    Integer("worker_cores", 1, min=1, max=2, label="Worker cores"),
    Float("worker_memory", 1.0, min=0.25, max=2.0, label="Worker memory (GiB)"),
    handler=_options,
)
"""
    )
    path.chmod(0o600)
    return path


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("gateway")
    api, http, tcp = free_port(), free_port(), free_port()
    config = _config(tmp, api, http, tcp)
    log = tmp / "dask-gateway-server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [_bin("dask-gateway-server"), "-f", str(config)],
            cwd=tmp,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    gw = Gateway(proc, f"http://127.0.0.1:{http}", f"gateway://127.0.0.1:{tcp}", log, set())
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{gw.address}/api/health", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_group(proc.pid, signal.SIGKILL, timeout=5)
            raise RuntimeError(f"dask-gateway-server did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.3)
    gw.note_children()
    try:
        yield gw
    finally:
        gw.note_children()
        stop_group(proc.pid, signal.SIGTERM, timeout=30)  # the server stops its clusters and proxy first
        proc.wait(timeout=5)
    assert not group_members(proc.pid)
    assert not [pid for pid in gw.children if _alive(pid)], "gateway children outlived the server"
    assert PASSWORD not in log.read_text()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _clusters(gw: Gateway) -> list[str]:
    """The names of the user's active (pending or running) clusters, from the gateway's REST API.

    Plain HTTP rather than a second ``dask_gateway.Gateway``: a client starts an IO-loop thread of its own, which
    under a loaded CI machine can miss distributed's 10 s start-up wait and fail the check for the wrong reason."""
    auth = base64.b64encode(f"eolake:{PASSWORD}".encode()).decode()
    request = urllib.request.Request(
        f"{gw.address}/api/v1/clusters/?status=pending,running", headers={"Authorization": f"Basic {auth}"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return sorted(json.load(response))


def test_gateway_cluster_runs_a_zonal_sum(gateway: Gateway, caplog: pytest.LogCaptureFixture) -> None:
    grid = GridSpec(resolution=0.5, bounds=(-5.0, 42.0, 20.0, 56.0))
    mask = country_mask(grid)
    n = len(mask.attrs["countries_iso3"])
    rng = np.random.default_rng(6)
    values = rng.gamma(2.0, 1.0, size=(6, *mask.shape))
    values[rng.random(values.shape) < 0.3] = np.nan
    land = mask.values >= 0
    expected = np.stack(
        [
            np.bincount(mask.values[land & np.isfinite(d)], weights=d[land & np.isfinite(d)], minlength=n)
            for d in values
        ]
    )
    settings = gateway.settings(
        dask_gateway_options={"worker_cores": 2, "worker_memory": 0.5}, dask_adapt_min=1, dask_adapt_max=2
    )
    caplog.set_level(logging.DEBUG)
    with dask_client(settings) as client:
        client.wait_for_workers(1, timeout=120)
        workers = client.scheduler_info()["workers"]
        assert all(a.startswith("tls://127.0.0.1:") for a in workers)
        assert {(w["nthreads"], w["memory_limit"]) for w in workers.values()} == {(2, 2**29)}  # the options
        gateway.note_children()
        pids = set(client.run(os.getpid).values())
        assert pids and pids <= gateway.children  # the workers are the gateway's processes, not ours
        lazy = zonal_sums(da.from_array(values, chunks=(2, 14, 25)), mask.values, n)  # type: ignore[no-untyped-call]
        assert isinstance(lazy, da.Array)
        got = lazy.compute(scheduler=client.get)  # type: ignore[no-untyped-call]
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    assert _clusters(gateway) == []  # shut down on exit
    shown = caplog.text + repr(settings) + str(settings) + settings.model_dump_json()
    assert PASSWORD not in shown


def test_gateway_cluster_of_fixed_size(gateway: Gateway) -> None:
    with dask_client(gateway.settings(dask_workers=2)) as client:
        client.wait_for_workers(2, timeout=120)
        workers = client.scheduler_info()["workers"].values()
        assert len(workers) == 2 and {(w["nthreads"], w["memory_limit"]) for w in workers} == {(1, 2**30)}
        assert int(da.ones((100, 100), chunks=10).sum().compute(scheduler=client.get)) == 10_000
    assert _clusters(gateway) == []


def test_gateway_refusal_names_the_setting(gateway: Gateway) -> None:
    wrong = "not-the-password-123"
    settings = gateway.settings(dask_gateway_token=SecretStr(wrong))
    with pytest.raises(ComputeError, match="EOLAKE_DASK_GATEWAY_TOKEN") as info, dask_client(settings):
        pass
    assert wrong not in str(info.value) and "401" in str(info.value)


@pytest.mark.parametrize("options", [{"worker_cores": 64}, {"gpus": 1}])
def test_gateway_rejected_options_name_the_setting(gateway: Gateway, options: dict[str, int]) -> None:
    settings = gateway.settings(dask_gateway_options=options)
    loops = _io_loops()
    with pytest.raises(ComputeError, match="EOLAKE_DASK_GATEWAY_OPTIONS"), dask_client(settings):
        pass
    assert _clusters(gateway) == []
    # the refused cluster's client loop is stopped, not left to garbage collection
    assert _io_loops() <= loops


def _io_loops() -> set[threading.Thread]:
    """distributed's IO-loop threads alive in this process (dask-gateway clients run one each)."""
    return {t for t in threading.enumerate() if t.name == "IO loop" and t.is_alive()}


@pytest.mark.slow
def test_demo_derives_its_emissions_on_the_gateway(gateway: Gateway, cli: Cli, tmp_path: Path) -> None:
    """``eolake demo`` with only the gateway's settings in its environment: the emissions derivation runs on a
    cluster the gateway starts for it (and stops after); the password is in no output and no lake file."""
    created = gateway.log.read_text().count("Created cluster")
    cli.env.update(
        EOLAKE_DASK_GATEWAY_ADDRESS=gateway.address,
        EOLAKE_DASK_GATEWAY_PROXY_ADDRESS=gateway.proxy_address,
        EOLAKE_DASK_GATEWAY_USER="eolake",
        EOLAKE_DASK_GATEWAY_TOKEN=PASSWORD,
        EOLAKE_DASK_GATEWAY_OPTIONS='{"worker_cores": 2, "worker_memory": 2}',
        EOLAKE_DASK_WORKERS="1",
    )
    lake = tmp_path / "lake"
    args = ["--start", "2020-03-02", "--end", "2020-03-03", "--bbox", "2,47,10,53", "--resolution", "0.25"]
    proc = cli("demo", "--lake", str(lake), "--archive", str(tmp_path / "upstream"), *args)
    assert "emissions table" in proc.stdout
    log = gateway.log.read_text()
    assert log.count("Created cluster") == created + 1 and "for user eolake" in log
    assert _clusters(gateway) == []
    assert PASSWORD not in proc.stdout + proc.stderr
    leaks = [p for p in lake.rglob("*") if p.is_file() and PASSWORD.encode() in p.read_bytes()]
    assert leaks == []
    assert list((lake / "tables" / "emissions").rglob("*.parquet"))
