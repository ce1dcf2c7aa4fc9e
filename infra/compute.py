"""The dask client factory: a LocalCluster by default, or an existing scheduler by address."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from distributed import Client, LocalCluster

from infra.settings import Settings, get_settings


@contextmanager
def dask_client(settings: Settings | None = None) -> Iterator[Client]:
    """A connected client for the run; a LocalCluster it starts is closed on exit.

    ``EOLAKE_DASK_ADDRESS=tcp://127.0.0.1:8786`` connects to a running scheduler instead.
    """
    settings = settings or get_settings()
    if settings.dask_address:
        with Client(settings.dask_address, set_as_default=False) as client:
            yield client
        return
    with (
        LocalCluster(
            n_workers=settings.dask_workers,
            threads_per_worker=settings.dask_threads_per_worker,
            memory_limit=settings.dask_memory_limit,
            host="127.0.0.1",
            dashboard_address=None,
            processes=True,
        ) as cluster,
        Client(cluster, set_as_default=False) as client,
    ):
        yield client
