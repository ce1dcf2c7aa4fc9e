"""Start a dask scheduler and workers as separate processes on 127.0.0.1 (the local stand-in for a cluster)."""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from infra.services import Service, _bin, free_port


@dataclass
class DaskProcesses:
    scheduler: Service
    workers: list[Service] = field(default_factory=list)

    @property
    def address(self) -> str:
        return self.scheduler.url

    def stop(self) -> None:
        for w in self.workers:
            w.stop()
        self.scheduler.stop()


def start_dask(
    log_dir: Path, *, n_workers: int = 1, threads: int = 2, memory_limit: str = "4GiB"
) -> DaskProcesses:
    """``dask scheduler`` plus ``n_workers`` × ``dask worker``, all bound to 127.0.0.1; returns when every
    worker has registered."""
    from distributed import Client

    log_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    slog = log_dir / f"dask-scheduler-{port}.log"
    with open(slog, "wb") as out:
        sched = subprocess.Popen(
            [
                _bin("dask"),
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--dashboard-address",
                "127.0.0.1:0",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    procs = DaskProcesses(Service("dask-scheduler", sched, address, slog))
    for i in range(n_workers):
        wlog = log_dir / f"dask-worker-{port}-{i}.log"
        with open(wlog, "wb") as out:
            proc = subprocess.Popen(
                [
                    _bin("dask"),
                    "worker",
                    address,
                    "--host",
                    "127.0.0.1",
                    "--dashboard-address",
                    "127.0.0.1:0",
                    "--nthreads",
                    str(threads),
                    "--memory-limit",
                    memory_limit,
                    "--name",
                    f"eolake-{i}",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        procs.workers.append(Service(f"dask-worker-{i}", proc, address, wlog))
    deadline = time.monotonic() + 60
    while True:
        try:
            with Client(address, timeout=5, set_as_default=False) as client:
                client.wait_for_workers(n_workers, timeout=max(1.0, deadline - time.monotonic()))
            return procs
        except OSError:
            if time.monotonic() > deadline or sched.poll() is not None:
                procs.stop()
                raise RuntimeError(f"dask scheduler at {address} did not start; see {slog}") from None
            time.sleep(0.5)
