"""Flow: catalog maintenance — re-derive collection extents from their items and regenerate the Intake catalog."""

from __future__ import annotations

from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from infra.maintenance import refresh_collections, sync_pgstac
from infra.publish import publish_intake
from infra.storage import open_lake


@task(cache_policy=NO_CACHE)
def refresh_task(lake_url: str) -> list[str]:
    return refresh_collections(open_lake(lake_url))


@task(cache_policy=NO_CACHE)
def pgstac_task(lake_url: str) -> dict[str, int]:
    return sync_pgstac(open_lake(lake_url))


@flow(name="maintain_catalog")
def maintain_catalog(lake: str | None = None, pgstac_sync: bool = False) -> dict[str, Any]:
    """Recompute every collection's extent and links from the items present (rewriting each collection's
    item table compacts it), rewrite ``catalog.yaml`` and, with ``pgstac_sync``, upsert everything into pgstac
    (reached through the ``PG*`` variables)."""
    the_lake = open_lake(lake)
    refreshed = refresh_task(the_lake.url)
    result: dict[str, Any] = {"collections": refreshed, "intake": publish_intake(the_lake)}
    if pgstac_sync:
        result["pgstac"] = pgstac_task(the_lake.url)
    return result
