"""Flow: harvest granules from a source (static STAC catalog or STAC API) into the lake's raw zone."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd
from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner

from flows.artifacts import report_harvest, timed
from flows.progress import completed
from flows.retries import RETRIES, RETRY_DELAYS_S, retry_condition
from flows.windows import resolve_window, writer_lock
from infra.harvest import days_touched, failed_row, harvest_granule, plan_harvest, resolve_versions
from infra.ledger import read_granules, upsert_granules
from infra.publish import granule_collection_id, publish_granules
from infra.sources import UpstreamGranule, find_granules
from infra.storage import open_lake
from transforms.errors import SourceError


@task(
    cache_policy=NO_CACHE,
    retries=RETRIES,
    retry_delay_seconds=RETRY_DELAYS_S,
    retry_condition_fn=retry_condition,
)
def fetch_task(g: UpstreamGranule, lake_url: str, source: str, attempts: int) -> dict[str, Any]:
    return harvest_granule(g, open_lake(lake_url), source=source, attempts=attempts)


@flow(name="harvest_granules", task_runner=ThreadPoolTaskRunner(max_workers=4))  # type: ignore[arg-type]
def harvest_granules(
    source: str,
    product: str,
    start: dt.date | None = None,
    end: dt.date | None = None,
    lake: str | None = None,
    days_back: int = 2,
) -> dict[str, Any]:
    """Fetch new granules of ``product`` for ``start``…``end`` (default: the ``days_back`` days before the
    scheduled time); quarantine bad ones; supersede old versions."""
    start, end = resolve_window(start, end, days_back=days_back)
    with timed() as clock:
        summary = _harvest(source, product, start, end, lake)
    links = [
        open_lake(lake).url_of("stac", granule_collection_id(product), "items", f"{gid}.json")
        for gid in summary["harvested_ids"]
    ]
    report_harvest(summary, product=product, seconds=clock["seconds"], item_links=links)
    return summary


def _harvest(source: str, product: str, start: dt.date, end: dt.date, lake: str | None) -> dict[str, Any]:
    the_lake = open_lake(lake)
    upstream = find_granules(source, product=product, start=start, end=end)
    ledger = read_granules(the_lake)
    todo = plan_harvest(upstream, ledger)
    prior = dict(zip(ledger["granule_id"], ledger["attempts"], strict=True))
    attempts = {g.granule_id: int(prior.get(g.granule_id) or 0) + 1 for g in todo}
    submitted = [(fetch_task.submit(g, the_lake.url, source, attempts[g.granule_id]), g) for g in todo]
    granule_of = {id(fut): g for fut, g in submitted}
    rows: list[dict[str, Any]] = []
    for fut in completed([fut for fut, _ in submitted], f"fetching {len(todo)} granules"):
        g = granule_of[id(fut)]
        try:
            rows.append(fut.result())
        except SourceError as exc:
            rows.append(failed_row(g, source=source, error=exc, attempts=attempts[g.granule_id]))
    with writer_lock(product):  # state, then catalog: one writer per product at a time
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
        publish_granules(the_lake, touched, footprints)
    quarantined = [(r["granule_id"], r["reason"]) for r in rows if r["status"] == "quarantined"]
    return {
        "source": source,
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
