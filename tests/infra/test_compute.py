"""The dask client factory: a LocalCluster by default, or real scheduler/worker processes by address, on which
the emissions derivation runs."""

from __future__ import annotations

from pathlib import Path

import dask.array as da

from infra.compute import dask_client
from infra.dask_processes import start_dask
from infra.settings import Settings


def test_local_cluster_by_default() -> None:
    with dask_client(Settings(dask_workers=1, dask_threads_per_worker=1)) as client:
        assert client.submit(sum, [1, 2, 3]).result() == 6
        assert all(addr.startswith("tcp://127.0.0.1:") for addr in client.scheduler_info()["workers"])


def test_existing_scheduler_by_address(tmp_path: Path) -> None:
    procs = start_dask(tmp_path, n_workers=1)
    try:
        with dask_client(Settings(dask_address=procs.address)) as client:
            (worker,) = client.scheduler_info()["workers"].values()
            assert worker["name"] == "eolake-0" and worker["id"] == "eolake-0"
            assert int(da.ones((100, 100), chunks=10).sum().compute(scheduler=client.get)) == 10_000
    finally:
        procs.stop()
    assert procs.scheduler.process.poll() is not None and all(
        w.process.poll() is not None for w in procs.workers
    )
