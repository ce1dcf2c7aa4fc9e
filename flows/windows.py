"""Which days a run covers, and the one lock that keeps two runs from writing the same product at once."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from transforms.errors import InputError

WRITER_LIMIT_PREFIX = "eolake-writer-"
"""Global concurrency limits named ``eolake-writer-<product>`` (limit 1) serialise the runs that write a
product's ledger rows, cube days and catalog items: two runs never write the same product and day at once.
A limit is created on the Prefect server the first time a run needs it."""


def resolve_window(start: dt.date | None, end: dt.date | None, *, days_back: int) -> tuple[dt.date, dt.date]:
    """Explicit ``start``/``end`` win; otherwise the ``days_back`` days ending the day before the run's
    scheduled time (UTC), so a daily schedule always reprocesses the last few days (late granules)."""
    if start is not None and end is not None:
        if end < start:
            raise InputError(f"inverted date range: start {start} is after end {end}")
        return start, end
    if days_back < 1:
        raise InputError(f"days_back must be at least 1, got {days_back}")
    from prefect.runtime import flow_run

    scheduled = flow_run.scheduled_start_time
    today = scheduled.astimezone(dt.UTC).date() if scheduled else dt.datetime.now(dt.UTC).date()
    last = end or today - dt.timedelta(days=1)
    return start or last - dt.timedelta(days=days_back - 1), last


@contextmanager
def writer_lock(product: str, *, timeout_s: float = 3600) -> Iterator[None]:
    """Hold the product's writer slot while writing (waits for a run that holds it)."""
    from prefect.concurrency.sync import concurrency

    name = ensure_writer_limit(product)
    with concurrency(name, occupy=1, timeout_seconds=timeout_s, strict=True):
        yield


def ensure_writer_limit(product: str) -> str:
    """Create the product's writer limit (1 slot) on the Prefect server if it is missing; returns its name."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    name = f"{WRITER_LIMIT_PREFIX}{product}"
    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            with suppress(ObjectAlreadyExists):
                client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))
    return name
