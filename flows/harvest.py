"""Flow: harvest granules from one or more sources (configured names, STAC catalogs or APIs) into the raw zone.

A run with explicit ``start``/``end`` (a backfill) searches those days. A scheduled run (no dates) is
incremental: it searches from its source's last successful high-water mark (less an overlap of ``days_back``
days) to the scheduled time, and records the new mark only when every download worked.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from contextlib import nullcontext, suppress
from typing import Any

import pandas as pd
from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner

from flows.artifacts import report_harvest, timed
from flows.progress import completed
from flows.retries import RETRIES, RETRY_DELAYS_S, retry_condition
from flows.windows import writer_lock
from infra.adapters import day_window, open_source
from infra.harvest import (
    SourceGate,
    days_touched,
    failed_row,
    harvest_granule,
    incremental_window,
    plan_harvest,
    resolve_versions,
)
from infra.http import UpstreamAuthError
from infra.ledger import last_mark, read_granules, record_mark, upsert_granules
from infra.sources import UpstreamGranule, search_granules
from infra.storage import Lake, open_lake
from transforms.errors import EolakeError, InputError, SourceError

MAX_WORKERS = 64
"""Threads for transfers; each source's own ``max_connections`` bounds how many of them download at once."""


SOURCE_LIMIT_PREFIX = "eolake-source-"
"""Global concurrency limits ``eolake-source-<name>`` (``max_connections`` slots) bound a source's downloads
across every harvest run at once (e.g. the NO2 and CO deployments both fetching from CDSE); created or
resized on the Prefect server when a run starts."""


@task(
    cache_policy=NO_CACHE,
    retries=RETRIES,
    retry_delay_seconds=RETRY_DELAYS_S,
    retry_condition_fn=retry_condition,
)
def fetch_task(
    g: UpstreamGranule, lake: Lake, source: str, attempts: int, gate: SourceGate
) -> dict[str, Any]:
    # the run's lake, opened once: opening an S3 lake probes its bucket (two round-trips per granule)
    return harvest_granule(g, lake, source=source, attempts=attempts, gate=gate)


def source_limit_name(source: str) -> str:
    """``eolake-source-<name>`` for a configured name; a URL or path gets a slug and a short hash."""
    slug = re.sub(r"[^a-z0-9]+", "-", source.lower()).strip("-")
    if slug == source:
        return f"{SOURCE_LIMIT_PREFIX}{slug}"
    return f"{SOURCE_LIMIT_PREFIX}{slug[-40:]}-{hashlib.sha256(source.encode()).hexdigest()[:8]}"


def ensure_source_limit(source: str, slots: int) -> str:
    """Create the source's global concurrency limit with ``slots``, or resize it; returns its name."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate, GlobalConcurrencyLimitUpdate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    name = source_limit_name(source)
    with get_client(sync_client=True) as client:
        try:
            current = client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            with suppress(ObjectAlreadyExists):
                client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=slots))
        else:
            if current.limit != slots:
                client.update_global_concurrency_limit(name, GlobalConcurrencyLimitUpdate(limit=slots))
    return name


@flow(name="harvest_granules", task_runner=ThreadPoolTaskRunner(max_workers=MAX_WORKERS))  # type: ignore[arg-type]
def harvest_granules(
    source: str,
    product: str,
    start: dt.date | None = None,
    end: dt.date | None = None,
    lake: str | None = None,
    days_back: int = 2,
    timeliness: str | None = None,
) -> dict[str, Any]:
    """Fetch new granules of ``product`` from ``source`` (several: comma-separated; one being down does not
    stop the others) for ``start``…``end``, or incrementally since the last successful run; quarantine bad
    ones; supersede old versions. ``timeliness`` (nrti/offl/rpro) narrows the search."""
    sources = [s.strip() for s in source.split(",") if s.strip()]
    if not sources:
        raise InputError("no source given: name a configured source or a STAC catalog/API")
    summaries: list[dict[str, Any]] = []
    for name in sources:
        with timed() as clock:
            try:
                summary = _harvest(
                    name, product, start, end, lake, days_back=days_back, timeliness=timeliness
                )
            except EolakeError as exc:
                if len(sources) == 1:
                    raise
                summary = _failed_summary(name, exc)
        links: list[str] = []
        if summary["harvested_ids"]:
            from catalog.items import granule_collection_id  # pystac + shapely: only when items were written

            collection = granule_collection_id(product)
            links = [
                open_lake(lake).url_of("stac", collection, "items", f"{g}.json")
                for g in summary["harvested_ids"]
            ]
        report_harvest(summary, product=product, seconds=clock["seconds"], item_links=links)
        summaries.append(summary)
    if len(summaries) == 1:
        return summaries[0]
    return _combined(summaries)


def _window(
    source: str, product: str, start: dt.date | None, end: dt.date | None, lake: Any, days_back: int
) -> tuple[dt.datetime, dt.datetime, bool]:
    """The sensing-time window to search and whether the run is incremental (no explicit dates)."""
    if start is not None and end is not None:
        if end < start:
            raise InputError(f"inverted date range: start {start} is after end {end}")
        lo, hi = day_window(start, end)
        return lo, hi, False
    if days_back < 1:
        raise InputError(f"days_back must be at least 1, got {days_back}")
    from prefect.runtime import flow_run

    scheduled = flow_run.scheduled_start_time
    now = scheduled.astimezone(dt.UTC) if scheduled else dt.datetime.now(dt.UTC)
    mark = last_mark(lake, source, product)
    lo, hi = incremental_window(None if mark is None else mark.to_pydatetime(), now, days_back=days_back)
    return lo, hi, True


def _harvest(
    source: str,
    product: str,
    start: dt.date | None,
    end: dt.date | None,
    lake: str | None,
    *,
    days_back: int,
    timeliness: str | None,
) -> dict[str, Any]:
    the_lake = open_lake(lake)
    lo, hi, incremental = _window(source, product, start, end, the_lake, days_back)
    gate = SourceGate(open_source(source))
    upstream = search_granules(gate.adapter, product=product, start=lo, end=hi, timeliness=timeliness)
    ledger = read_granules(the_lake)
    todo = plan_harvest(upstream, ledger)
    prior = dict(zip(ledger["granule_id"], ledger["attempts"], strict=True))
    attempts = {g.granule_id: int(prior.get(g.granule_id) or 0) + 1 for g in todo}
    if todo:  # each transfer also holds a slot of the source's limit over all runs
        from prefect.concurrency.sync import concurrency

        limit = ensure_source_limit(source, gate.max_connections)
        gate.shared = lambda: concurrency(limit, occupy=1, strict=True)
    submitted = [(fetch_task.submit(g, the_lake, source, attempts[g.granule_id], gate), g) for g in todo]
    granule_of = {id(fut): g for fut, g in submitted}
    rows: list[dict[str, Any]] = []
    download_failures = 0
    for fut in completed([fut for fut, _ in submitted], f"fetching {len(todo)} granules from {source}"):
        g = granule_of[id(fut)]
        try:
            rows.append(fut.result())
        except UpstreamAuthError:  # the source refused our credentials: stop, record nothing half-done
            raise
        except SourceError as exc:
            download_failures += 1
            rows.append(failed_row(g, source=source, error=exc, attempts=attempts[g.granule_id]))
    # a settled no-op writes nothing: no writer slot (three round trips to the Prefect server)
    settled = not rows and not incremental and resolve_versions(ledger).empty
    with nullcontext() if settled else writer_lock(product):  # state, then catalog: one writer per product
        ledger = upsert_granules(the_lake, rows)
        changes = resolve_versions(ledger)
        if not changes.empty:
            ledger = upsert_granules(the_lake, changes.to_dict("records"))
        new = pd.DataFrame(rows)
        touched = (
            ledger[ledger["granule_id"].isin(set(new["granule_id"]) | set(changes.get("granule_id", [])))]
            if rows
            else ledger.iloc[:0]
        )
        footprints = {
            g.granule_id: {"geometry": g.item.get("geometry"), "bbox": g.item.get("bbox")} for g in upstream
        }
        if not touched.empty:
            from infra.publish import publish_granules  # catalog + cube machinery: only when items change

            publish_granules(the_lake, touched, footprints)
        if incremental and download_failures == 0:
            record_mark(the_lake, source, product, hi, dt.datetime.now(dt.UTC))
    quarantined = [(r["granule_id"], r["reason"]) for r in rows if r["status"] == "quarantined"]
    return {
        "source": source,
        "window": [lo.isoformat(), hi.isoformat()],
        "incremental": incremental,
        "max_connections": gate.max_connections,
        "peak_connections": gate.peak,
        "found": len(upstream),
        "fetched": sum(1 for r in rows if r["status"] == "harvested"),
        "harvested_ids": [r["granule_id"] for r in rows if r["status"] == "harvested"],
        "skipped": len(upstream) - len(todo),
        "quarantined": quarantined,
        "superseded": []
        if changes.empty
        else list(changes.loc[changes["status"] == "superseded", "granule_id"]),
        "days_to_regrid": [d.isoformat() for d in days_touched(touched)] if not touched.empty else [],
    }


def _failed_summary(source: str, exc: EolakeError) -> dict[str, Any]:
    return {
        "source": source,
        "error": str(exc),
        "found": 0,
        "fetched": 0,
        "harvested_ids": [],
        "skipped": 0,
        "quarantined": [],
        "superseded": [],
        "days_to_regrid": [],
    }


def _combined(summaries: list[dict[str, Any]]) -> dict[str, Any]:
    """One summary over several sources; ``sources`` keeps each one's, ``failed`` names those that failed."""
    return {
        "source": ", ".join(s["source"] for s in summaries),
        "sources": summaries,
        "failed": [(s["source"], s["error"]) for s in summaries if "error" in s],
        "found": sum(s["found"] for s in summaries),
        "fetched": sum(s["fetched"] for s in summaries),
        "harvested_ids": [gid for s in summaries for gid in s["harvested_ids"]],
        "skipped": sum(s["skipped"] for s in summaries),
        "quarantined": [q for s in summaries for q in s["quarantined"]],
        "superseded": [g for s in summaries for g in s["superseded"]],
        "days_to_regrid": sorted({d for s in summaries for d in s["days_to_regrid"]}),
    }
